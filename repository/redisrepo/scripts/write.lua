-- Save or delete an entity record if the caller's proof holds its lock.
-- KEYS[1] the lock: "<fence> <token>" while held (see redisprovider)
-- KEYS[2] the entity record: a hash {d = JSON, f = fence of the last write
--         under a proof, 0 after Insert}
-- ARGV[1] the proof's lock value "<fence> <token>", ARGV[2] its fence,
-- ARGV[3] 'save' or 'delete', ARGV[4] the JSON to save.
-- Returns 1 when written, 0 if the proof does not hold the lock, -1 if the
-- record does not exist, -2 if the record's fence is newer than the proof's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local f = redis.call('HGET', KEYS[2], 'f')
if not f then
  return -1
end
if tonumber(ARGV[2]) < (tonumber(f) or 0) then
  return -2
end
if ARGV[3] == 'delete' then
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[2], 'd', ARGV[4], 'f', ARGV[2])
end
return 1
