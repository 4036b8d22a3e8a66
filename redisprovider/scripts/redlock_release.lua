-- Redlock, one node: end ARGV[1]'s part in key.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] waiters (its field '':
-- tombstones may exist, see redlock_acquire.lua), KEYS[4] the token's
-- tombstone.
-- ARGV[1] token, ARGV[2] mode, ARGV[3] wake-up channel, ARGV[4] key,
-- ARGV[5] the fence this node granted ('0' if unknown), ARGV[6] tombstone
-- TTL in ms ('0': none), ARGV[7] '1' if an undo must wake waiters all the same.
-- Modes:
--   'release'  free the hold if ARGV[1] has it (anybody's if ARGV[1] is
--              ''); wake waiters if any.
--   'undo'     roll back a vote that did not make a quorum grant: free the
--              hold (only if its fence is ARGV[5], unless that is '0')
--              without waking anybody unless ARGV[7] is '1' (the voters
--              of a split retry on their own, jittered; but a waiter may
--              have seen a quorum of votes of which the voter counted
--              fewer, some arriving late), and give the fence back if nothing
--              was issued after it; if ARGV[6] is not '0' (the vote's
--              reply was lost) and the hold is not here, the vote may not
--              have run yet: leave a tombstone so that it refuses when it
--              does.
--   'leave'    only stop being a waiter.
-- Returns 1 if the hold was freed, 0 if ARGV[1] did not hold it.
-- A release of a hold that is not marked as waited for (hold.lua's '+',
-- see redlock_acquire.lua) touches only the hold: its token is no waiter
-- here (a grant takes it off), and nobody else waits. That fast path runs
-- before hold.lua's functions exist and reads the hold with hold.lua's
-- constants HOLD and HOLD_WAITED.
if ARGV[2] == 'release' then
  local v = redis.pcall('GET', KEYS[1])
  if type(v) == 'string' then
    local _, n, holder = string.match(v, HOLD)
    if holder and (ARGV[1] == '' or holder == ARGV[1]) then
      redis.call('DEL', KEYS[1])
      if string.byte(n, -1) == HOLD_WAITED and redis.call('HLEN', KEYS[3]) > 0 then
        redis.call('PUBLISH', ARGV[3], '0:' .. ARGV[4])
      end
      return 1
    end
  end
end
--#hold
if ARGV[1] ~= '' then -- ForceRelease's '' is the tombstone flag, no waiter
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if ARGV[2] == 'leave' then
  return 0
end
local f, _, holder = hold_get(KEYS[1])
if not holder or (ARGV[1] ~= '' and holder ~= ARGV[1]) then
  if ARGV[2] == 'undo' and ARGV[6] ~= '0' then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[6])
    -- The waiters' field '' tells the acquire fast path to look for
    -- tombstones, for as long as this one lives (the hash's expiry is only
    -- ever raised).
    redis.call('HSET', KEYS[3], '', '1')
    if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[6]) then
      redis.call('PEXPIRE', KEYS[3], ARGV[6])
    end
  end
  return 0
end
if ARGV[2] == 'undo' then
  if ARGV[5] ~= '0' and f ~= ARGV[5] then
    return 0 -- another vote of the same token
  end
  redis.call('DEL', KEYS[1])
  if f == ARGV[5] and redis.call('GET', KEYS[2]) == f then
    redis.call('DECR', KEYS[2])
  end
  if ARGV[7] == '1' and redis.call('HLEN', KEYS[3]) > 0 then
    redis.call('PUBLISH', ARGV[3], '0:' .. ARGV[4])
  end
  return 1
end
return 0 -- 'release': not held (freed above if it was)
