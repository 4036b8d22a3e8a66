-- A waiter gives up: leave the queue, and if it was the head of the queue
-- and the lock is free, wake the next waiter.
-- KEYS[1] lock, KEYS[2] waiter queue, KEYS[3] waiter deadlines.
-- ARGV[1] token, ARGV[2] wake-up channel, ARGV[3] key. Returns 1.
local wasHead = redis.call('LINDEX', KEYS[2], 0) == ARGV[1]
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if wasHead and redis.call('EXISTS', KEYS[1]) == 0 then
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then
    redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
  end
end
return 1
