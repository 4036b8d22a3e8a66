-- Redlock: raise this node's fence counter to at least ARGV[2], and record
-- ARGV[2] as the fence of ARGV[1]'s hold if it is still here, so that every
-- node of the granting majority knows the quorum's fence.
-- KEYS[1] lock hash, KEYS[2] fence counter. ARGV[1] token, ARGV[2] fence.
-- Returns 1.
local fence = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < fence then
  redis.call('SET', KEYS[2], ARGV[2])
end
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'f', ARGV[2])
end
return 1
