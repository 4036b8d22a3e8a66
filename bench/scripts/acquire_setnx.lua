-- Measurement only: a lock as one SET NX PX inside a script (redislock's
-- fast path without its retry branch).
-- KEYS[1] lock. ARGV[1] token, ARGV[2] TTL in ms.
-- Returns 1 if taken, 0 if held.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
