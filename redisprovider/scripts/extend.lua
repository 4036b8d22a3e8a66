-- Set the remaining TTL of ARGV[1]'s hold to ARGV[2] ms.
-- KEYS[1] lock. ARGV[1] token, ARGV[2] TTL in ms.
-- Returns the hold's fence as a decimal string, or 0 if ARGV[1] does not
-- hold it (free, another holder, or a foreign value, left as it is).
-- Running it twice sets the same TTL again.
local f, _, t = hold_get(KEYS[1])
if not f or t ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return f
