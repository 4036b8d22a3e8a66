-- Report the hold. KEYS[1] lock hash.
-- Returns {token, fence, PTTL in ms}, or {} when free.
local v = redis.call('HMGET', KEYS[1], 't', 'f')
if not v[1] then
  return {}
end
return {v[1], tonumber(v[2]), redis.call('PTTL', KEYS[1])}
