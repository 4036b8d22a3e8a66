-- Report the hold. KEYS[1] lock.
-- Returns {token, fence, PTTL in ms}, or {} when free.
local v = redis.call('GET', KEYS[1])
if not v then
  return {}
end
local sp = string.find(v, ' ', 1, true)
return {string.sub(v, sp + 1), tonumber(string.sub(v, 1, sp - 1)), redis.call('PTTL', KEYS[1])}
