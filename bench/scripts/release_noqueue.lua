-- Measurement only: release_lib.lua without the look at the queue.
-- KEYS[1] lock, KEYS[2] unused. ARGV[1] token.
-- Returns 1 if freed, 0 if ARGV[1] did not hold it.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
if string.sub(v, string.find(v, ' ', 1, true) + 1) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
