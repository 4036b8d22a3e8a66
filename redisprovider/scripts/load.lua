-- Lock and load: the acquire script, run as the function acquire() (the
-- line "--#acquire" below stands for acquire.lua as holdScript composes it
-- with hold.lua; load.go puts it there when the package is loaded, so this
-- file never repeats it), then, if it granted, one field of a record hash
-- beside the lock read in the same atomic step.
-- KEYS: acquire.lua's, then KEYS[#KEYS] the record hash (a DataKey of the
--       lock: the same hash tag, so one Cluster slot).
-- ARGV: acquire.lua's, then ARGV[#ARGV] the field.
-- Returns {reply} with acquire.lua's reply when it did not grant; when it
-- granted (reply[1] == 1): {reply, 1, value} with the field's value,
-- {reply, 0} if the hash or the field is missing, {reply, -1, message} if
-- the record key holds another type (the read's error must not abort the
-- script: the grant is already written).
local function acquire()
--#acquire
end

local reply = acquire()
if reply[1] ~= 1 then
  return {reply}
end
local v = redis.pcall('HGET', KEYS[#KEYS], ARGV[#ARGV])
if type(v) == 'table' then
  return {reply, -1, v.err}
elseif v then
  return {reply, 1, v}
end
return {reply, 0}
