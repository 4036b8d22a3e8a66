-- Redlock admission, one node: report the node's marker, or, if it has
-- none (its data is lost or it never served), add ARGV[1] to the claims on
-- it. A claim is in memory only, so a later restart erases it: admitting
-- with it proves that the node has not restarted since this probe.
-- KEYS[1] marker, KEYS[2] admission wait, KEYS[3] claims (a set).
-- ARGV[1] claim id, ARGV[2] claim TTL in ms.
-- Returns {1, high, maxttl, wait PTTL (<= 0: none)} for a node with a
-- marker, {0} for a node without one (now claimed).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, tonumber(redis.call('HGET', KEYS[1], 'high') or '0'),
    tonumber(redis.call('HGET', KEYS[1], 'maxttl') or '0'), redis.call('PTTL', KEYS[2])}
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {0}
