-- Redlock: raise this node's fence counter to at least ARGV[2], and record
-- ARGV[2] as the fence of ARGV[1]'s hold if it is still here, so that every
-- node of the granting majority knows the quorum's fence.
-- KEYS[1] lock, KEYS[2] fence counter. ARGV[1] token, ARGV[2] fence, a
-- decimal string. Returns 1. Running it twice changes nothing more.
local c = redis.call('GET', KEYS[2])
if not c or fence_less(c, ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
local f, n, t = hold_get(KEYS[1])
if f and t == ARGV[1] then
  redis.call('SET', KEYS[1], hold_value(ARGV[2], n, ARGV[1]), 'KEEPTTL')
end
return 1
