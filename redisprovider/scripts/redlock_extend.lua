-- Redlock, one node: set the remaining TTL of ARGV[1]'s hold to ARGV[2] ms.
-- KEYS[1] lock, KEYS[2] the node's marker (see redlock_acquire.lua).
-- Returns the hold's fence, or 0 if ARGV[1] does not hold it here.
local fence, _, holder = hold_get(KEYS[1])
if holder ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if tonumber(redis.call('HGET', KEYS[2], 'maxttl') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'maxttl', ARGV[2])
end
return tonumber(fence)
