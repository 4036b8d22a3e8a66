-- Redlock, one node: vote for ARGV[1] if this node is admitted and the key
-- is free. A node whose marker is missing has lost its data (a restart
-- without persistence) and refuses until it is re-admitted; a re-admitted
-- node refuses until its wait (the longest TTL plus drift) has passed.
-- KEYS[1] lock: a hold (hold.lua; Redlock's nonce is REDLOCK_NONCE: its
--         re-sent votes are undone by rollback and tombstone instead)
-- KEYS[2] the key's fence counter (never expires)
-- KEYS[3] waiters: a hash token -> ms (server clock); only says who to wake
-- KEYS[4] the node's marker: a hash with floor, high (the highest fence
--         this node issued or raised) and maxttl (the longest TTL it granted)
-- KEYS[5] the node's admission wait (exists, with a PX, while it waits)
-- KEYS[6] this token's tombstone: a rollback of this very request that ran
--         first (its reply was lost), so it must not grant late
-- ARGV[1] token, ARGV[2] TTL in ms, ARGV[3] '1' to register as a waiter if
-- refused, ARGV[4] waiter lease in ms.
-- Returns {1, fence} when granted; {0, ms, holder} when held (the holder's
-- PTTL and token);
-- {-1, 0} when not admitted; {-2, ms} while the admission wait lasts.
-- Nothing is written unless the vote is granted (or a waiter registered).
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {-1, 0}
end
local w = redis.call('PTTL', KEYS[5])
if w > 0 then
  return {-2, w}
end
if redis.call('DEL', KEYS[6]) == 1 then
  return {0, 0}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[3] == '1' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local lease = tonumber(ARGV[4])
    redis.call('HSET', KEYS[3], ARGV[1], now + lease)
    if redis.call('PTTL', KEYS[3]) < lease then
      redis.call('PEXPIRE', KEYS[3], lease)
    end
  end
  local _, _, holder = hold_get(KEYS[1])
  return {0, redis.call('PTTL', KEYS[1]), holder or ''}
end
local floor = tonumber(redis.call('HGET', KEYS[4], 'floor') or '0')
if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
  redis.call('SET', KEYS[2], string.format('%d', floor))
end
local fence = redis.call('INCR', KEYS[2]) -- max(counter, floor) + 1
local f = string.format('%d', fence)
if tonumber(redis.call('HGET', KEYS[4], 'high') or '0') < fence then
  redis.call('HSET', KEYS[4], 'high', f)
end
if tonumber(redis.call('HGET', KEYS[4], 'maxttl') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[4], 'maxttl', ARGV[2])
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SET', KEYS[1], hold_value(f, REDLOCK_NONCE, ARGV[1]), 'PX', ARGV[2])
return {1, fence}
