-- Measurement only: a copy of redisprovider's release.lua on its common
-- path (held by ARGV[1], nobody waiting), to time its parts.
-- KEYS[1] lock, KEYS[2] queue. ARGV[1] token.
-- Returns 1 if freed, 0 if ARGV[1] did not hold it.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
if string.sub(v, string.find(v, ' ', 1, true) + 1) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
local head = redis.call('LINDEX', KEYS[2], 0)
if head then
  return 2
end
return 1
