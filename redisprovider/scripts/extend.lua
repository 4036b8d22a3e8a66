-- Set the remaining TTL of ARGV[1]'s hold to ARGV[2] ms.
-- KEYS[1] lock. Returns the hold's fence, or 0 if ARGV[1] does not hold it.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
local sp = string.find(v, ' ', 1, true)
if string.sub(v, sp + 1) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(string.sub(v, 1, sp - 1))
