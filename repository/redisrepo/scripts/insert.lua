-- Store a new entity record unless one exists.
-- KEYS[1] the entity record, ARGV[1] the JSON.
-- Returns 1 when stored, 0 if the record exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'f', 0)
return 1
