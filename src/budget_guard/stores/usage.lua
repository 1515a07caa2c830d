-- budget-guard: every usage operation of one company, atomically, in one round trip.
--
-- KEYS[1] usage hash: "h" newest bucket index seen, "u" tokens used, "r" tokens reserved,
--         and one field per live bucket, named by its ring slot (bucket % size).
-- KEYS[2] zset of reservation ids scored by the time (ms) they lapse
-- KEYS[3] hash of reservation id -> tokens
-- KEYS[4] dedupe key of this call (used only when dedupe_ttl_ms > 0; always a key of the
--         company's slot so that the script runs on Redis Cluster)
-- KEYS[5] zset of the company's live bounded dedupe keys (member: the digest ending KEYS[4])
--         scored by the time (ms) they lapse; its size is checked against key_bound
-- ARGV[1] "op now_ms bucket_ms n limit tokens reservation_ttl_ms dedupe_ttl_ms key_bound
--         [thresholds]" (one string: encoding and sending one argument is cheaper than nine);
--         key_bound 0 means the dedupe key is the system's own and is neither counted nor
--         refused; thresholds (optional) are the alert fractions of the limit, comma-separated
-- ARGV[2] reservation id, ARGV[3] dedupe fingerprint
--
-- Arithmetic on totals is done with HINCRBY (exact Int64 in C) and totals are returned as the
-- strings Redis stores: Lua numbers are doubles and would round above 2^53.
-- Returns "status used reserved frees" (frees: a time in ms, "never", or "-"), or on a
-- dedupe replay {"replay", used, reserved, frees, stored first answer}, or for a new bounded
-- key of a company at its bound "keys live_keys oldest_lapse_ms" (nothing recorded).
-- When a charge crosses alert thresholds, the status string ends with " <crossed mask>".

local usage, held_at, held, dedupe, live_keys = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = {}
for word in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = word end
local op = a[1]
local now = tonumber(a[2])
local bucket_ms = tonumber(a[3])
local n = tonumber(a[4])
local limit = tonumber(a[5])
local tokens = a[6]
local reservation_ttl = tonumber(a[7])
local dedupe_ttl = a[8]
local use_dedupe = dedupe_ttl ~= '0'
local key_bound = tonumber(a[9] or '0')
local size = n + 1

local state = redis.call('HMGET', usage, 'h', 'r')
local head = tonumber(state[1])
local any_reserved = state[2] and state[2] ~= '0'
local reserved_changed = false
local used_now = nil -- the total after add(), when a double holds it exactly

-- 1. Move the window: drop buckets that aged out since the last call (each bucket is
--    dropped once, so this is O(1) amortized). A clock that went back writes into the
--    newest bucket seen, never into one that would expire early.
local bucket = math.floor(now / bucket_ms)
if head then
  if bucket < head then
    bucket = head
  elseif bucket - head >= size then
    redis.call('DEL', usage)
    if state[2] then redis.call('HSET', usage, 'r', state[2]) end
    redis.call('HSET', usage, 'h', bucket)
  elseif bucket > head then
    for b = head + 1, bucket do
      local slot = b % size
      local v = redis.call('HGET', usage, slot)
      if v then
        redis.call('HINCRBY', usage, 'u', '-' .. v)
        redis.call('HDEL', usage, slot)
      end
    end
    redis.call('HSET', usage, 'h', bucket)
  end
end

-- 2. Lapse reservations whose worker never settled them (crashed, say).
if any_reserved then
  local lapsed = redis.call('ZRANGEBYSCORE', held_at, '-inf', now)
  for _, id in ipairs(lapsed) do
    reserved_changed = true
    local amount = redis.call('HGET', held, id)
    if amount then
      redis.call('HINCRBY', usage, 'r', '-' .. amount)
      redis.call('HDEL', held, id)
    end
    redis.call('ZREM', held_at, id)
  end
end

local function keep_alive(always)
  -- Idle keys vanish by themselves once their newest bucket has aged out. The expiry only
  -- moves when a new bucket starts, so within one bucket there is nothing to refresh.
  if head == bucket and not always then return end
  local ttl = (bucket + 1 + n) * bucket_ms - now + reservation_ttl
  redis.call('PEXPIRE', usage, math.max(1, math.floor(ttl)))
end

local function add(amount)
  if amount == '0' then return 'ok' end
  -- HINCRBY checks Int64 overflow exactly and writes nothing when it fails; the bucket is
  -- never larger than the total, so the second increment cannot overflow.
  local res = redis.pcall('HINCRBY', usage, 'u', amount)
  if type(res) == 'table' and res.err then return 'overflow' end
  if res < 9007199254740992 and res > -9007199254740992 then used_now = res end
  if not head then redis.call('HSET', usage, 'h', bucket) end
  redis.call('HINCRBY', usage, bucket % size, amount)
  keep_alive()
  return 'ok'
end

local function release(id)
  local amount = redis.call('HGET', held, id)
  if amount then
    redis.call('HINCRBY', usage, 'r', '-' .. amount)
    redis.call('HDEL', held, id)
    redis.call('ZREM', held_at, id)
  end
end

local status = 'ok'
local replay = false

if op == 'record' or op == 'settle' then
  if op == 'settle' then release(ARGV[2]) end
  if use_dedupe then
    replay = redis.call('GET', dedupe)
    -- The key lapses by the caller's clock too (PX alone follows only the server's clock).
    if replay and tonumber(string.match(replay, '^(%d+)|')) <= now then replay = false end
  end
  local member = nil
  if use_dedupe and not replay and key_bound > 0 then
    -- A new caller-chosen key: count the company's live ones (each lapsed one is removed
    -- once, so O(1) amortized) and refuse it, recording nothing, at the bound.
    member = string.match(dedupe, '[^:]*$')
    redis.call('ZREMRANGEBYSCORE', live_keys, '-inf', now)
    local live = redis.call('ZCARD', live_keys)
    if live >= key_bound then
      local oldest = redis.call('ZRANGE', live_keys, 0, 0, 'WITHSCORES')[2] or now
      return 'keys ' .. live .. ' ' .. string.format('%d', tonumber(oldest))
    end
  end
  if not replay then
    status = add(tokens)
    if status == 'ok' and use_dedupe then
      local used = redis.call('HGET', usage, 'u') or '0'
      local lapses_at = now + tonumber(dedupe_ttl)
      local lapses = string.format('%d', lapses_at)
      local ttl = math.max(1, math.floor(tonumber(dedupe_ttl)))
      redis.call('SET', dedupe, lapses .. '|' .. ARGV[3] .. '|' .. used .. '|' .. a[5],
                 'PX', ttl)
      if member then
        redis.call('ZADD', live_keys, lapses_at, member)
        -- The set lives as long as its longest-lived key, and then vanishes by itself.
        if redis.call('PTTL', live_keys) < ttl then redis.call('PEXPIRE', live_keys, ttl) end
      end
    end
  end
elseif op == 'reserve' then
  local cur = redis.call('HMGET', usage, 'u', 'r')
  local held_now = tonumber(cur[1] or '0') + tonumber(cur[2] or '0')
  local amount = tonumber(tokens)
  if held_now < limit and held_now + amount <= limit then
    if not head then redis.call('HSET', usage, 'h', bucket) end
    redis.call('HINCRBY', usage, 'r', tokens)
    redis.call('HSET', held, ARGV[2], tokens)
    redis.call('ZADD', held_at, now + reservation_ttl, ARGV[2])
    redis.call('PEXPIRE', held, reservation_ttl * 2)
    redis.call('PEXPIRE', held_at, reservation_ttl * 2)
    keep_alive(true)
  else
    status = 'refused'
  end
elseif op == 'release' then
  release(ARGV[2])
elseif op == 'extend' then
  -- A request still running keeps its hold: one more reservation TTL from now. A hold that
  -- already lapsed (swept above) stays gone, and the caller hears so.
  if redis.call('ZSCORE', held_at, ARGV[2]) then
    redis.call('ZADD', held_at, now + reservation_ttl, ARGV[2])
    redis.call('PEXPIRE', held, reservation_ttl * 2)
    redis.call('PEXPIRE', held_at, reservation_ttl * 2)
    keep_alive(true)
  else
    status = 'gone'
  end
end

-- 3. Alert thresholds (only when the caller passes them): field "a" of the usage hash is the
--    bitmask of thresholds that fired. Decided here, with the charge, so exactly one caller
--    on any host hears of a crossing. A threshold the usage was under before this charge is
--    armed again (the window moved, or the limit was raised); one it is at or over after it
--    fires if armed. The hash vanishes with the usage, and the mask with it.
local crossed = ''
if a[10] and not replay and status == 'ok' and (op == 'record' or op == 'settle')
    and tokens ~= '0' and limit > 0 then
  local after = tonumber(redis.call('HGET', usage, 'u') or '0')
  local before = after - tonumber(tokens)
  local fired = tonumber(redis.call('HGET', usage, 'a') or '0')
  local mask, new, bit = fired, 0, 1
  for t in string.gmatch(a[10], '[^,]+') do
    local at = tonumber(t) * limit
    local set = mask % (2 * bit) >= bit
    if set and before < at then mask, set = mask - bit, false end
    if not set and after >= at then mask, new = mask + bit, new + bit end
    bit = bit * 2
  end
  if mask ~= fired then redis.call('HSET', usage, 'a', mask) end
  if new > 0 then crossed = ' ' .. new end
end

-- 4. The snapshot. When over the limit, find when the window frees enough (walk the live
--    buckets oldest first; only on this path, so the common path stays O(1)).
local used_s, reserved_s
if op == 'record' and used_now and not reserved_changed then
  used_s, reserved_s = string.format('%d', used_now), state[2] or '0'
else
  local final = redis.call('HMGET', usage, 'u', 'r')
  used_s, reserved_s = final[1] or '0', final[2] or '0'
end
local frees = '-'
local used = tonumber(used_s)
if used >= limit then
  frees = 'never'
  local remaining = used
  for b = bucket - n, bucket do
    local v = redis.call('HGET', usage, b % size)
    if v then
      remaining = remaining - tonumber(v)
      if remaining < limit then
        frees = string.format('%d', (b + 1 + n) * bucket_ms)
        break
      end
    end
  end
end
if replay then
  return {'replay', used_s, reserved_s, frees, replay}
end
return status .. ' ' .. used_s .. ' ' .. reserved_s .. ' ' .. frees .. crossed
