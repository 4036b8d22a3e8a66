-- Measurement only: redislock's release (the value is the token alone).
-- KEYS[1] lock, KEYS[2] unused. ARGV[1] token.
-- Returns 1 if freed, 0 if ARGV[1] did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
