-- Save or delete an entity record if the caller's proof holds its lock.
-- A redisprovider.GuardedScript: guard_held() checks the proof's hold.
-- KEYS[1] the lock (the guard's)
-- KEYS[2] the entity record: a hash {d = the encoded entity, f = fence of
--         the last write under a proof, s = that write's sequence number,
--         both 0 after Insert, i = the id of the Insert that created it}
-- KEYS[3] the record's delete marker: "<fence> <seq>" of the delete that
--         removed it, for a minute
-- ARGV[1] the proof's fence, ARGV[2] its token (the guard's)
-- ARGV[3] 'save' or 'delete', ARGV[4] this write's sequence number (a
-- decimal string, increasing over the writes of one proof), ARGV[5] the
-- encoded entity to save.
-- Returns 1 when written, also when an earlier execution of this very
-- write (re-sent after a lost reply) wrote; 0 if the proof does not hold
-- the lock; -1 if the record does not exist; -2 if the record was written
-- by a newer fence, or by a later write of the same proof (a delayed
-- duplicate); -3 if the record's key holds a value redisrepo did not write.
-- Foreign values are left as they are.
local F, S = ARGV[1], ARGV[4]
if ARGV[3] == 'delete' and redis.pcall('GET', KEYS[3]) == F .. ' ' .. S then
  return 1
end
local r = redis.pcall('HMGET', KEYS[2], 'f', 's')
if r.err then
  return -3
end
local f, s = r[1], r[2] or '0'
if f and f == F and s == S then
  return 1
end
if not guard_held() then
  return 0
end
if not f then
  return -1
end
if fence_less(F, f) or (F == f and not fence_less(s, S)) then
  return -2
end
if ARGV[3] == 'delete' then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[3], F .. ' ' .. S, 'PX', 60000)
else
  redis.call('HSET', KEYS[2], 'd', ARGV[5], 'f', F, 's', S)
end
return 1
