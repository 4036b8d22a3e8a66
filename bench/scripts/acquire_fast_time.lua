-- Measurement only: acquire_fast.lua plus a TIME call and the arithmetic
-- the slow path does with it, to price reading the server clock.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] queue, KEYS[4] tombstone.
-- ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, fence} when taken, {0, 0} otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[4]) == 0 and now > 0 then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'PX', ARGV[2])
  return {1, fence}
end
return {0, 0}
