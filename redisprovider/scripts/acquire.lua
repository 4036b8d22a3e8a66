-- Take the lock if it is free, issuing the next fence.
-- KEYS[1] lock hash {t = token, f = fence}, KEYS[2] fence counter,
-- KEYS[3] contended flag. ARGV[1] token, ARGV[2] TTL in ms.
-- Returns {1, fence} when taken, {0, holder's PTTL in ms} when held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local pttl = redis.call('PTTL', KEYS[1])
  -- Ask the holder's release to publish a wake-up. The flag outlives the
  -- hold a little; a waiter still waiting after that retries at the expiry
  -- it was told and sets it again.
  redis.call('SET', KEYS[3], '1', 'PX', math.max(pttl, 0) + 5000)
  return {0, pttl}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 't', ARGV[1], 'f', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, fence}
