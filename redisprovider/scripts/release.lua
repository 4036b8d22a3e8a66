-- Free the lock if ARGV[1] holds it, or whoever holds it if ARGV[1] is ''.
-- KEYS[1] lock hash, KEYS[2] contended flag.
-- ARGV[1] token or '', ARGV[2] wake-up channel, ARGV[3] message.
-- Publishes a wake-up only if a waiter asked for one. Returns 1 if freed.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
