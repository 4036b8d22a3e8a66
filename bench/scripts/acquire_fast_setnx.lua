-- Measurement only: a fenced acquire with one existence check: SET NX
-- first, then INCR and rewrite the value with the fence (KEEPTTL).
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3..4] unused.
-- ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, fence} when taken, {0, 0} otherwise.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'KEEPTTL')
  return {1, fence}
end
return {0, 0}
