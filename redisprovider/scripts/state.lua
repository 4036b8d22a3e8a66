-- Report the hold. KEYS[1] lock.
-- Returns {token, fence as a decimal string, PTTL in ms}; {} when free;
-- 0 when the key holds a foreign value.
local f, _, t = hold_get(KEYS[1])
if f then
  return {t, f, redis.call('PTTL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
return {}
