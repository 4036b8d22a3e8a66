-- Redlock: raise this node's fence counter to at least ARGV[2], and record
-- ARGV[2] as the fence of ARGV[1]'s hold if it is still here, so that every
-- node of the granting majority knows the quorum's fence.
-- KEYS[1] lock, KEYS[2] fence counter. ARGV[1] token, ARGV[2] fence.
-- Returns 1.
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, string.find(v, ' ', 1, true) + 1) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'KEEPTTL')
end
return 1
