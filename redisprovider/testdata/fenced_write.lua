-- The fenced store of TestRedlockCrossProcessFaults: write count+1 if the
-- writer's fence is above the last one written and the count it read is
-- still current.
-- KEYS[1] a hash {fence, count}. ARGV[1] the writer's fence, ARGV[2] the
-- count it read.
-- Returns {1, count} if written; {-1, fence} if the fence is not above the
-- stored one (a regression, or a holder another grant overtook); {-2,
-- count} if the count changed since the read (a second holder wrote).
local f = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local c = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if tonumber(ARGV[1]) <= f then
  return {-1, f}
end
if c ~= tonumber(ARGV[2]) then
  return {-2, c}
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'count', c + 1)
return {1, c + 1}
