-- Redlock, one node: vote for ARGV[1] if this node is admitted and the key
-- is free. A node whose marker is missing has lost its data (a restart
-- without persistence) and refuses until it is re-admitted; a re-admitted
-- node refuses until its wait (the longest TTL plus drift) has passed.
-- KEYS[1] lock: a hold (hold.lua; Redlock's nonce is REDLOCK_NONCE: its
--         re-sent votes are undone by rollback and tombstone instead)
-- KEYS[2] the fence counter of the key's hash slot (never expires; shared by
--         the slot's keys, see slot.go)
-- KEYS[3] waiters: a hash token -> ms (server clock); only says who to wake.
--         Its field '' (no token is empty) says that tombstones of key may
--         exist: the hash lives at least as long as they do.
-- KEYS[4] the node's marker: a hash with floor, high (a bound above every
--         fence this node issued or raised: raised HIGH_SLACK beyond the
--         fence that passes it, so that a vote rarely writes it) and maxttl
--         (the longest TTL it granted)
-- KEYS[5] the node's admission wait (exists, with a PX, while it waits)
-- KEYS[6] this token's tombstone: a rollback of this very request that ran
--         first (its reply was lost), so it must not grant late
-- ARGV[1] token, ARGV[2] TTL in ms, ARGV[3] '1' to register as a waiter if
-- refused, ARGV[4] waiter lease in ms.
-- A hold whose nonce field ends in '+' (hold.lua) may have waiters here:
-- a waiter that registers marks the hold, and a grant made while others
-- wait is marked, so that only a marked release looks at the waiters.
-- Returns {1, fence} when granted; {0, ms, holder} when held (the holder's
-- PTTL and token);
-- {-1, 0} when not admitted; {-2, ms} while the admission wait lasts.
-- Nothing is written unless the vote is granted (or a waiter registered).
--
-- The fast path (admitted, key free, nobody waiting, no tombstone, no
-- admission wait: one EXISTS says so) reads the marker once and writes the
-- counter, the hold and, only when they rise, the marker's high and maxttl.
-- It runs before hold.lua's functions exist (see "Cheaper single-node
-- scripts" in docs/decisions.md) and spells out the hold's value.
local m = redis.call('HMGET', KEYS[4], 'floor', 'high', 'maxttl')
if not m[1] and redis.call('EXISTS', KEYS[4]) == 0 then
  return {-1, 0}
end
local HIGH_SLACK = 1024
-- grant issues max(counter, floor) + 1 and takes the hold, marked (nonce
-- field REDLOCK_NONCE .. '+') if mark is set.
local function grant(mark)
  local fence = redis.call('INCR', KEYS[2])
  local floor = tonumber(m[1] or '0')
  if fence <= floor then
    fence = floor + 1
    redis.call('SET', KEYS[2], string.format('%d', fence))
  end
  local f = string.format('%d', fence)
  redis.call('SET', KEYS[1], f .. ' ' .. REDLOCK_NONCE .. mark .. ' ' .. ARGV[1], 'PX', ARGV[2])
  local high = tonumber(m[2] or '0') < fence
  local longer = tonumber(m[3] or '0') < tonumber(ARGV[2])
  local h = string.format('%d', fence + HIGH_SLACK)
  if high and longer then
    redis.call('HSET', KEYS[4], 'high', h, 'maxttl', ARGV[2])
  elseif high then
    redis.call('HSET', KEYS[4], 'high', h)
  elseif longer then
    redis.call('HSET', KEYS[4], 'maxttl', ARGV[2])
  end
  return {1, fence}
end
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[5]) == 0 then
  return grant('')
end
--#hold
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
  local f, n, holder = hold_get(KEYS[1])
  if ARGV[3] == '1' and n and not hold_waited(n) then
    redis.call('SET', KEYS[1], hold_value(f, n .. '+', holder), 'KEEPTTL')
  end
  return {0, redis.call('PTTL', KEYS[1]), holder or ''}
end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HLEN', KEYS[3]) > 0 then
  return grant('+')
end
return grant('')
