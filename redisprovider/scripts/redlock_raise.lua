-- Redlock, one node: record the quorum's fence ARGV[2] of ARGV[1]'s grant:
-- raise the key's counter and the node's high to it, and rewrite the hold
-- with it. Only a node that still holds the vote counts (it may have lost
-- its data since).
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] the node's marker.
-- ARGV[1] token, ARGV[2] fence.
-- Returns 1 if recorded, 0 if ARGV[1] no longer holds key here.
local _, n, holder = hold_get(KEYS[1])
if holder ~= ARGV[1] or redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
local fence = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < fence then
  redis.call('SET', KEYS[2], ARGV[2])
end
if tonumber(redis.call('HGET', KEYS[3], 'high') or '0') < fence then
  redis.call('HSET', KEYS[3], 'high', string.format('%d', fence + 1024)) -- HIGH_SLACK, see redlock_acquire.lua
end
redis.call('SET', KEYS[1], hold_value(ARGV[2], n, ARGV[1]), 'KEEPTTL') -- n keeps the waiter mark
return 1
