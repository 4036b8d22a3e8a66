-- Redlock admission, one node: admit a node that has no marker, if the
-- claim ARGV[1] made on it by a probe is still there (no restart since).
-- KEYS[1] marker, KEYS[2] admission wait, KEYS[3] claims.
-- ARGV[1] claim id, ARGV[2] floor (every fence this node issues is above
-- it), ARGV[3] the longest TTL granted (ms), ARGV[4] the wait in ms before
-- the node votes ('0': none, at bootstrap).
-- Returns 1 if admitted, 0 if the node has a marker or the claim is gone.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'floor', ARGV[2], 'high', ARGV[2], 'maxttl', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
end
redis.call('DEL', KEYS[3])
return 1
