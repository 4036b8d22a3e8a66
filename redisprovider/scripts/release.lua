-- Free the lock if ARGV[1] holds it, or whoever holds it if ARGV[1] is '',
-- and, if the hold says someone may wait (see hold.lua), hand it to the
-- waiter at the head of the queue, or wake that waiter. A foreign value is
-- left as it is.
-- KEYS[1] lock, KEYS[2] waiter queue, KEYS[3] this token's release marker
-- (for token '', the key's), KEYS[4] fence counter, KEYS[5] waiter entries
-- (see acquire.lua).
-- ARGV[1] token or '', ARGV[2] wake-up channel, ARGV[3] key,
-- ARGV[4] this request's nonce, ARGV[5] how long, in ms, the marker says
-- that this request freed the lock ('0': no marker; the client never
-- re-sends a request).
--
-- Handoff: the live head of the queue (lapsed heads are dropped, as
-- acquire.lua does), or, if no PUBLISH reaches it, the first of the next
-- three that one reaches, if its entry names an instance, is granted the
-- key in this script: the next fence, a hold "<fence> <nonce>[+] <token>"
-- with its call's nonce (marked if others still wait) and its TTL from
-- now, and the message
-- "<fence> <elapsed> <seq> <nonce> <length of token>:<token><key>" on the
-- channel ARGV[2] .. ':' .. instance, where elapsed is the ms from its last
-- try (try number seq) to now, rounded down. Only if that PUBLISH reached a
-- subscriber (its provider's subscription is live) does the hold stay and
-- the waiter leave the queue; otherwise the fence number stays unused and
-- the waiter is skipped: it keeps its place if another takes the key, and
-- leaves the queue if nobody does (it polls, and joins again if alive).
-- If nobody takes it, the (new) head is woken on ARGV[2] with
-- "<length of head token>:<head token><key>", and takes the key by a try.
-- Returns 1 if freed, also when an earlier execution of this very request
-- (re-sent after a lost reply) freed it; 0 if ARGV[1] did not hold it.
-- Fast path: the caller's hold (or, for token '', anyone's) that nobody
-- waits behind. It runs before hold.lua's functions are created, so it
-- reads the hold with hold.lua's constants HOLD and HOLD_WAITED.
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' then
  local f, n, t = string.match(v, HOLD)
  if f and (ARGV[1] == '' or t == ARGV[1]) and string.byte(n, -1) ~= HOLD_WAITED then
    if ARGV[5] ~= '0' then
      redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
    end
    redis.call('DEL', KEYS[1])
    return 1
  end
end
--#hold

local f, n, t = hold_get(KEYS[1])
if not (f and (ARGV[1] == '' or t == ARGV[1])) then
  if ARGV[5] ~= '0' and redis.pcall('GET', KEYS[3]) == ARGV[4] then
    return 1
  end
  return 0
end
if ARGV[5] ~= '0' then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
end
if not hold_waited(n) then
  redis.call('DEL', KEYS[1])
  return 1
end

local tt = redis.call('TIME')
local now = tonumber(tt[1]) * 1000 + math.floor(tonumber(tt[2]) / 1000)

-- handoff tries to hand the key to waiter w with entry e (the caller
-- takes w out of the queue); it returns true if w took it, false if a
-- PUBLISH reached nobody, nil if w takes no handoff (or has lapsed). The
-- hold written replaces the released one (SET clears its TTL, PEXPIREAT
-- sets the new one).
local function handoff(w, e)
  local dl, last, ttl, seq, nonce, instance = string.match(e, '^(%d+) (%d+) (%d+) (%d+) (%S+) (.+)$')
  if not dl or tonumber(dl) < now then
    return nil
  end
  local fence = fence_next(KEYS[4])
  local msg = fence .. ' ' .. string.format('%d', math.max(now - tonumber(last), 0)) .. ' ' .. seq .. ' ' ..
    nonce .. ' ' .. #w .. ':' .. w .. ARGV[3]
  if redis.call('PUBLISH', ARGV[2] .. ':' .. instance, msg) == 0 then
    return false
  end
  redis.call('HDEL', KEYS[5], w)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    nonce = nonce .. '+'
  end
  -- The expiry is absolute, from the same instant as elapsed (SET PXAT
  -- would do it in one command, but needs Redis 6.2).
  redis.call('SET', KEYS[1], hold_value(fence, nonce, w))
  redis.call('PEXPIREAT', KEYS[1], now + tonumber(ttl))
  return true
end

-- Take the head out, dropping waiters at the head that stopped trying.
local head = redis.call('LPOP', KEYS[2])
local entry
while head do
  entry = redis.call('HGET', KEYS[5], head) or ''
  if tonumber(string.match(entry, '^%d+') or '0') >= now then
    break
  end
  redis.call('HDEL', KEYS[5], head)
  head = redis.call('LPOP', KEYS[2])
end
if not head then
  redis.call('DEL', KEYS[1])
  return 1
end
local took = handoff(head, entry)
if took then
  return 1
end
if took == nil then -- a live head that takes no handoff: it stays, and is woken
  if redis.call('LPUSH', KEYS[2], head) == 1 then
    -- The queue went with the head: it lasts until the head's deadline,
    -- which the waiter entries' hash outlives (see acquire.lua).
    redis.call('PEXPIREAT', KEYS[2], tonumber(string.match(entry, '^%d+')))
  end
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
  return 1
end
-- No PUBLISH reached the head: look at the next three. The head keeps its
-- place if one of them takes the key.
local skipped = {}
for _, w in ipairs(redis.call('LRANGE', KEYS[2], 0, 2)) do
  local e = redis.call('HGET', KEYS[5], w) or ''
  took = handoff(w, e)
  if took then
    redis.call('LPUSH', KEYS[2], head) -- first, so the queue (and its expiry) stays
    redis.call('LREM', KEYS[2], 1, w)
    return 1
  elseif took == false then
    skipped[#skipped + 1] = w
  elseif tonumber(string.match(e, '^%d+') or '0') >= now then
    break -- a live waiter that takes no handoff: wake the new head
  end
end
-- Nobody took it: the key is free. A waiter that no handoff could reach
-- has died or lost its subscription; it leaves the queue, so that the key
-- is not kept for it, and one that is alive joins again at its next try.
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[5], head)
for _, w in ipairs(skipped) do
  redis.call('LREM', KEYS[2], 1, w)
  redis.call('HDEL', KEYS[5], w)
end
head = redis.call('LINDEX', KEYS[2], 0)
if head then
  redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
end
return 1
