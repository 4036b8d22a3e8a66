-- Take the lock if it is free and no live waiter is ahead of the caller.
-- KEYS[1] lock: a hold (see hold.lua) with the hold's TTL; a waiter that
--         joins marks it (nonce + '+'), and so does the head that takes it
-- KEYS[2] fence counter: the one of the key's hash slot, shared by its keys
--         (never expires; see slot.go)
-- KEYS[3] waiter queue: a list of tokens, oldest first
-- KEYS[4] waiter entries: a hash token -> "<deadline>" or, for a waiter
--         that takes a handoff (see release.lua),
--         "<deadline> <last> <ttl> <seq> <nonce> <instance>": deadline the
--         ms (server clock) after which a waiter that has not tried again
--         counts as gone, last the ms (server clock, rounded up) when its
--         last try ran, ttl the TTL it asks for (ms), seq that try's
--         number, nonce its Acquire call's nonce, instance its provider's
--         id (its channel is the wake-up channel .. ':' .. instance). Its
--         field '' (no token is empty) holds the tombstones: " <nonce>:<ms>"
--         per request whose caller gave up on it (its reply was lost), so
--         it must not grant late (see giveup.lua). The hash outlives the
--         queue and every tombstone in it.
-- ARGV[1] token, ARGV[2] TTL in ms, ARGV[3] '1' to join the queue if
-- refused, ARGV[4] waiter lease in ms, ARGV[5] this request's nonce (an
-- Acquire call sends one nonce with all its tries), ARGV[6] the caller's
-- instance id for a handoff, '' (or absent) for none, ARGV[7] this try's
-- number within its call (absent: 0).
-- Order is fair: while anyone waits, only the head of the queue may take a
-- free key.
-- Returns {1, fence} when taken, the fence a decimal string; {1, fence,
-- pttl} when the hold is already this request's: an earlier execution of
-- it (the same nonce, re-sent by the client after a lost reply) took it,
-- or a release handed it to this call (its message may have been lost);
-- pttl is the hold's remaining TTL in ms. Returns {0, ms} when refused,
-- where ms is when to try again unwoken: the holder's PTTL (-1 for a
-- foreign value without TTL), or the head waiter's deadline.

-- Fast path: nobody holds the key, nobody waits, nobody gave up: the queue
-- never exists without the hash, so two keys say it. It runs before
-- hold.lua's functions are created (about 0.7 us of closures per call), so
-- it spells out fence_next and hold_value; the script tests pin both
-- writers of a hold to the same string.
if redis.call('EXISTS', KEYS[1], KEYS[4]) == 0 then
  local n = redis.call('INCR', KEYS[2])
  local fence
  if n < 9007199254740992 then
    fence = string.format('%d', n)
  else
    fence = redis.call('GET', KEYS[2])
  end
  redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[5] .. ' ' .. ARGV[1], 'PX', ARGV[2])
  return {1, fence}
end
--#hold

local hf, hn, ht = hold_get(KEYS[1])
if hn and hold_is(hn, ARGV[5]) and ht == ARGV[1] then
  -- a re-execution of the request that took it, or a handoff to this call
  return {1, hf, redis.call('PTTL', KEYS[1])}
end

local tombs = redis.call('HGET', KEYS[4], '')
if tombs then
  local i = string.find(tombs, ' ' .. ARGV[5] .. ':', 1, true)
  if i then
    local j = string.find(tombs, ' ', i + 1, true)
    local rest = string.sub(tombs, 1, i - 1) .. (j and string.sub(tombs, j) or '')
    if rest == '' then
      redis.call('HDEL', KEYS[4], '')
    else
      redis.call('HSET', KEYS[4], '', rest)
    end
    return {0, 0} -- the caller has gone; nobody reads this
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Drop waiters at the head that stopped trying.
local head = redis.call('LINDEX', KEYS[3], 0)
local deadline = 0
while head do
  deadline = tonumber(string.match(redis.call('HGET', KEYS[4], head) or '', '^%d+') or '0')
  if deadline >= now then
    break
  end
  redis.call('LPOP', KEYS[3])
  redis.call('HDEL', KEYS[4], head)
  head = redis.call('LINDEX', KEYS[3], 0)
end

local free = redis.call('EXISTS', KEYS[1]) == 0
if free and (not head or head == ARGV[1]) then
  if redis.call('HDEL', KEYS[4], ARGV[1]) == 1 then
    redis.call('LREM', KEYS[3], 1, ARGV[1])
  end
  local fence = fence_next(KEYS[2])
  local nonce = ARGV[5]
  if head then -- the head takes it: others may still wait
    nonce = nonce .. '+'
  end
  redis.call('SET', KEYS[1], hold_value(fence, nonce, ARGV[1]), 'PX', ARGV[2])
  return {1, fence}
end

if ARGV[3] == '1' then
  if hf and not hold_waited(hn) then -- tell the holder's release to wake the head
    redis.call('SET', KEYS[1], hold_value(hf, hn .. '+', ht), 'KEEPTTL')
  end
  local lease = tonumber(ARGV[4])
  if not head then
    -- A new queue: a deadline left in the hash (which may outlive a queue
    -- for its tombstones) is of a waiter that stopped; drop them all so
    -- that HSET below reports a newcomer truly, keeping the tombstones.
    local pt = tombs and redis.call('PTTL', KEYS[4]) or 0
    if redis.call('DEL', KEYS[4]) == 1 and pt > 0 then
      redis.call('HSET', KEYS[4], '', tombs)
      redis.call('PEXPIRE', KEYS[4], pt)
    end
  end
  local entry = string.format('%d', now + lease)
  local instance = ARGV[6] or ''
  if instance ~= '' then -- what a release needs to hand the key over
    local last = now
    if tonumber(t[2]) % 1000 ~= 0 then
      last = now + 1
    end
    entry = entry .. ' ' .. string.format('%d', last) .. ' ' .. ARGV[2] .. ' ' .. (ARGV[7] or '0') .. ' ' .. ARGV[5] .. ' ' .. instance
  end
  if redis.call('HSET', KEYS[4], ARGV[1], entry) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[1])
  end
  -- The queue outlives its last waiter's deadline, never longer; the hash
  -- outlives the queue (its expiry is only ever raised).
  if redis.call('PTTL', KEYS[3]) < lease then
    redis.call('PEXPIRE', KEYS[3], lease)
    if redis.call('PTTL', KEYS[4]) < lease then
      redis.call('PEXPIRE', KEYS[4], lease)
    end
  end
end

if free then
  return {0, math.max(deadline - now, 1)} -- reserved for the head waiter
end
return {0, redis.call('PTTL', KEYS[1])}
