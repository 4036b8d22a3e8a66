-- Move a fence counter of the layout before per-slot counters (one per
-- key, "<prefix>{K}:fence") into the counter of its slot: raise the slot's
-- counter to it, then delete it. Only raises, so it is safe while the key
-- is in use, and running it twice changes nothing more.
-- KEYS[1] the old counter, KEYS[2] the slot's counter (one Cluster slot).
-- Returns 1 if it moved a counter, 0 if KEYS[1] is missing or not a
-- counter (then it is left as it is).
local v = redis.pcall('GET', KEYS[1])
if type(v) ~= 'string' or not string.match(v, '^[1-9]%d*$') then
  return 0
end
if fence_less(redis.call('GET', KEYS[2]) or '0', v) then
  redis.call('SET', KEYS[2], v)
end
redis.call('DEL', KEYS[1])
return 1
