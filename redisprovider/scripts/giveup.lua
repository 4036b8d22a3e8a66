-- A caller gives up on a key after a failed or abandoned acquire: leave the
-- queue; free the lock if it holds a hold of the caller's request (nonce
-- ARGV[6]: its lost try took it, or a release handed it to its Acquire
-- call, which will not use it); if ARGV[4] is '1' (its last try's reply
-- was lost), also leave a tombstone so that the try, if it has not run
-- yet, will refuse when it does; and if the key is free now, wake the next
-- waiter. Running it twice changes nothing more.
-- KEYS[1] lock, KEYS[2] waiter queue, KEYS[3] waiter entries, whose
-- field '' holds the tombstones (see acquire.lua): " <nonce>:<ms>" each,
-- ms (server clock) when it lapses; lapsed ones are dropped here.
-- ARGV[1] token, ARGV[2] wake-up channel, ARGV[3] key, ARGV[4] '1' or '0',
-- ARGV[5] the tombstone's TTL in ms (the TTL the lost try asked for),
-- ARGV[6] the request's nonce ('' for none).
-- Returns 1.
local wasHead = redis.call('LINDEX', KEYS[2], 0) == ARGV[1]
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local _, n, t = hold_get(KEYS[1])
local held = ARGV[6] ~= '' and n ~= nil and hold_is(n, ARGV[6]) and t == ARGV[1]
if held then
  redis.call('DEL', KEYS[1])
end
-- A hold of the request does not prove that the lost try ran: it may be a
-- handoff to the call while the try still waits in Redis's input.
if ARGV[4] == '1' then
  local tt = redis.call('TIME')
  local now = tonumber(tt[1]) * 1000 + math.floor(tonumber(tt[2]) / 1000)
  local ttl = tonumber(ARGV[5])
  local kept, found = {}, false
  for nonce, ms in string.gmatch(redis.call('HGET', KEYS[3], '') or '', ' (%S+):(%d+)') do
    if nonce == ARGV[6] then
      found = true
    end
    if nonce == ARGV[6] or tonumber(ms) >= now then
      kept[#kept + 1] = ' ' .. nonce .. ':' .. ms
    end
  end
  if not found then
    kept[#kept + 1] = ' ' .. ARGV[6] .. ':' .. string.format('%d', now + ttl)
  end
  redis.call('HSET', KEYS[3], '', table.concat(kept))
  if redis.call('PTTL', KEYS[3]) < ttl then
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
if held or (wasHead and redis.call('EXISTS', KEYS[1]) == 0) then
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then
    redis.call('PUBLISH', ARGV[2], #head .. ':' .. head .. ARGV[3])
  end
end
return 1
