-- Measurement only: acquire_fast.lua without the fence (no INCR, the
-- value is the token alone), to price the fence counter.
-- KEYS[1] lock, KEYS[2] unused, KEYS[3] queue, KEYS[4] tombstone.
-- ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, 0} when taken, {0, 0} otherwise.
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[4]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, 0}
end
return {0, 0}
