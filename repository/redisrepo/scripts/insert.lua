-- Store a new entity record unless one exists.
-- KEYS[1] the entity record (see write.lua), ARGV[1] the encoded entity,
-- ARGV[2] this Insert's id.
-- Returns 1 when stored, also when an earlier execution of this very
-- Insert (re-sent after a lost reply) stored it; 0 if a record exists;
-- -3 if the key holds a value redisrepo did not write (left as it is).
local i = redis.pcall('HGET', KEYS[1], 'i')
if type(i) == 'table' then
  return -3
end
if i == ARGV[2] then
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'f', 0, 's', 0, 'i', ARGV[2])
return 1
