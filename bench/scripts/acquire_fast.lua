-- Measurement only: the fast path of redisprovider's acquire.lua as it was
-- before decision 53 (free key, nobody waiting, no tombstone key), to time
-- its parts; acquire_fast_2exists.lua has the shape it has since.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] queue, KEYS[4] tombstone.
-- ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, fence} when taken, {0, 0} otherwise.
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[4]) == 0 then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
  return {1, fence}
end
return {0, 0}
