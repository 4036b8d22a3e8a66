-- Free the lock if ARGV[1] holds it, or whoever holds it if ARGV[1] is '',
-- and wake the waiter at the head of the queue.
-- KEYS[1] lock, KEYS[2] waiter queue.
-- ARGV[1] token or '', ARGV[2] wake-up channel, ARGV[3] key.
-- The message is "<length of head token>:<head token><key>".
-- Returns 1 if freed, 0 if ARGV[1] did not hold it.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
if ARGV[1] ~= '' and string.sub(v, string.find(v, ' ', 1, true) + 1) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
local head = redis.call('LINDEX', KEYS[2], 0)
if head then
  redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
end
return 1
