-- The one definition of redisprovider's hold format, prepended to every
-- script of the provider and to every script made with GuardedScript.
--
-- A hold is the string "<fence> <nonce> <token>" at the lock key, with the
-- hold's TTL: fence a decimal integer without leading zeros, nonce the id of
-- the acquire request that took it (no spaces), token the rest (it may
-- contain spaces). A nonce field ending in '+' (nonces never do) says that
-- someone may wait in the queue: a waiter joined during the hold, or the
-- hold was taken by the head of a queue; only such a release looks at the
-- queue to wake its head (hold_waited, hold_is). Any other value, or a key of another type, is foreign:
-- no token holds it and nothing here changes it.
--
-- Fences are handled as decimal strings, never as Lua numbers (doubles),
-- so they are exact up to 2^63-1, the range of Redis's INCR.
--
-- The two constants below go first in every script, before any fast path
-- (constants cost nothing to create); the functions after "--#functions"
-- go where the script has its line "--#hold" (holdSource), so a fast path
-- above that line reads holds with HOLD and HOLD_WAITED without creating
-- the functions' closures.

-- HOLD is the pattern of a hold: string.match(v, HOLD) returns its fence,
-- nonce and token, or nil for a foreign value.
local HOLD = '^([1-9]%d*) (%S+) (.+)$'

-- HOLD_WAITED is the last byte of a nonce field that says someone may
-- wait ('+').
local HOLD_WAITED = 43
--#functions

-- hold_get returns the fence, nonce and token of the hold at key, or nil if
-- the key is missing or foreign.
local function hold_get(key)
  local v = redis.pcall('GET', key)
  if type(v) ~= 'string' then
    return nil
  end
  return string.match(v, HOLD)
end

-- hold_is reports whether nonce field n (from hold_get) is of request nonce.
local function hold_is(n, nonce)
  return n == nonce or n == nonce .. '+'
end

-- hold_waited reports whether nonce field n (from hold_get) says that
-- someone may wait.
local function hold_waited(n)
  return string.byte(n, -1) == HOLD_WAITED
end

-- hold_value is the string of a hold.
local function hold_value(fence, nonce, token)
  return fence .. ' ' .. nonce .. ' ' .. token
end

-- fence_less reports whether the decimal string a is below b.
local function fence_less(a, b)
  return #a < #b or (#a == #b and a < b)
end

-- fence_next increments the fence counter and returns its new value as a
-- decimal string. Below 2^53 the double that Lua gets is exact; above, the
-- counter is read back as a string.
local function fence_next(counter)
  local n = redis.call('INCR', counter)
  if n < 9007199254740992 then
    return string.format('%d', n)
  end
  return redis.call('GET', counter)
end

-- guard_held reports whether the hold at KEYS[1] has fence ARGV[1] and
-- token ARGV[2]: the check of GuardedScript.
local function guard_held()
  local f, _, t = hold_get(KEYS[1])
  return f ~= nil and f == ARGV[1] and t == ARGV[2]
end

