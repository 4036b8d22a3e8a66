-- Set the remaining TTL of ARGV[1]'s hold to ARGV[2] ms.
-- KEYS[1] lock hash. Returns the hold's fence, or 0 if ARGV[1] does not hold it.
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], 'f'))
