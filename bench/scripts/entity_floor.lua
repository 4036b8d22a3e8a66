-- The entity cycle's floor for lock and load (bench/entity.go): take the
-- lock as SET NX PX does and, only if it was taken, read the data, in one
-- script: the least a client can send for "lock, then read under the lock"
-- in one round trip.
-- KEYS[1] the lock, KEYS[2] the data (a string).
-- ARGV[1] the lock's value, ARGV[2] its TTL in ms.
-- Returns {1, data} when taken (data nil if missing), {0} when held.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2])}
end
return {0}
