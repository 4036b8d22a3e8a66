-- Measurement only: acquire_fast.lua without the tombstone key (EXISTS on
-- two keys), the shape of acquire.lua's fast path since decision 53.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] queue, KEYS[4] unused.
-- ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, fence} when taken, {0, 0} otherwise.
if redis.call('EXISTS', KEYS[1], KEYS[3]) == 0 then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
  return {1, fence}
end
return {0, 0}
