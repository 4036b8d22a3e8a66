-- Free the lock if ARGV[1] holds it, or whoever holds it if ARGV[1] is '',
-- and, if the hold says someone may wait (see hold.lua), wake the waiter at
-- the head of the queue. A foreign value is left as it is.
-- KEYS[1] lock, KEYS[2] waiter queue, KEYS[3] this token's release marker
-- (for token '', the key's).
-- ARGV[1] token or '', ARGV[2] wake-up channel, ARGV[3] key,
-- ARGV[4] this request's nonce, ARGV[5] how long, in ms, the marker says
-- that this request freed the lock ('0': no marker; the client never
-- re-sends a request).
-- The message is "<length of head token>:<head token><key>".
-- Returns 1 if freed, also when an earlier execution of this very request
-- (re-sent after a lost reply) freed it; 0 if ARGV[1] did not hold it.
local f, n, t = hold_get(KEYS[1])
if f and (ARGV[1] == '' or t == ARGV[1]) then
  redis.call('DEL', KEYS[1])
  if ARGV[5] ~= '0' then
    redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
  end
  if hold_waited(n) then
    local head = redis.call('LINDEX', KEYS[2], 0)
    if head then
      redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
    end
  end
  return 1
end
if ARGV[5] ~= '0' and redis.pcall('GET', KEYS[3]) == ARGV[4] then
  return 1
end
return 0
