-- Shared by every script of the Redis store; each script file is appended to this one.
--
-- Counters and times are kept as decimal strings and compared as strings: Lua numbers are
-- doubles, which would round 64-bit values above 2^53 (a HOTP counter may be anywhere up to
-- 2^64 - 1).

local U32_MAX = 4294967295
local I64_MAX = '9223372036854775807'

-- Aborts the script with an error whose code the client maps to a corrupt-record error.
-- Every script checks what it reads before its first write, because Redis does not undo the
-- writes of a script that fails half-way.
local function corrupt(what)
  error({err = 'CORRUPT ' .. what})
end

-- A stored unsigned integer: decimal digits without leading zeros.
local function uint(value, what)
  if type(value) ~= 'string' or not (value == '0' or value:match('^[1-9]%d*$')) or #value > 20 then
    corrupt(what)
  end
  return value
end

-- Whether the unsigned decimal a is greater than b.
local function gt(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end

-- The server's clock in milliseconds since the epoch, as a number (exact: below 2^53).
local function server_millis()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The same, as a decimal string.
local function server_now()
  local time = redis.call('TIME')
  return time[1] .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
end

-- ----- devices -------------------------------------------------------------------------------
-- One hash per user holds all the user's devices. For a device with id ID, field ID holds the
-- record (JSON: everything but the state and the confirmation) and field ID:s the state,
-- "seq,n,d,f,lf,lu,c,pu": insertion order, next counter, drift, failures, last failure at,
-- last used at (the last two empty when unset), confirmed ('1' or '0') and pending until
-- (empty when the device has no deadline). Field '#seq' counts insertions.

local function state_field(id)
  return id .. ':s'
end

-- The device as {record, seq, n, d, f, lf, lu, c, pu} (unset times false), the order the
-- client parses; fails on a damaged state.
local function parse_device(record, state)
  local seq, n, d, f, lf, lu, c, pu =
    (state or ''):match('^(%d+),(%d+),(-?%d+),(%d+),(%d*),(%d*),([01]),(%d*)$')
  if not seq then
    corrupt('device state')
  end
  uint(n, 'device counter')
  uint(f, 'device failures')
  if lf ~= '' then
    uint(lf, 'device failure time')
  end
  if lu ~= '' then
    uint(lu, 'device use time')
  end
  if pu ~= '' then
    uint(pu, 'device deadline')
  end
  return {record, seq, n, d, f, lf ~= '' and lf or false, lu ~= '' and lu or false, c,
    pu ~= '' and pu or false}
end

-- Whether a parsed device still exists at `now` (ms): it has no deadline, or a later one.
local function is_live(device, now)
  return not device[9] or gt(device[9], now)
end

local function is_confirmed(device)
  return device[8] == '1'
end

-- The device (see parse_device), or nil if it is gone or has expired at `now`.
local function read_device(devices, id, now)
  local fields = redis.call('HMGET', devices, id, state_field(id))
  if not fields[1] then
    return nil
  end
  local device = parse_device(fields[1], fields[2])
  if not is_live(device, now) then
    return nil
  end
  return device
end

-- `record` if the device `id` that verified it is still a confirmed device in `devices` (or
-- nothing verified it: `id` is ''), else `unverified`: a device deleted between a code check
-- and the session write must not leave a session verified by it.
local function verified_record(devices, id, record, unverified)
  if id == '' then
    return record
  end
  local device = read_device(devices, id, server_now())
  if device and is_confirmed(device) then
    return record
  end
  return unverified
end

-- Stores the state part of a device as parse_device returns it.
local function write_state(devices, id, device)
  local state = table.concat({device[2], device[3], device[4], device[5], device[6] or '',
    device[7] or '', device[8], device[9] or ''}, ',')
  redis.call('HSET', devices, state_field(id), state)
end

-- Whether a field of the devices hash is a device's record (ids never contain ':').
local function is_record_field(field)
  return field ~= '#seq' and not field:find(':', 1, true)
end

-- Every device of the user, expired ones included, as {id = device}; fails on any damaged
-- state.
local function all_devices(devices)
  local all = redis.call('HGETALL', devices)
  local fields = {}
  for i = 1, #all, 2 do
    fields[all[i]] = all[i + 1]
  end
  local found = {}
  for field, value in pairs(fields) do
    if is_record_field(field) then
      found[field] = parse_device(value, fields[state_field(field)])
    end
  end
  return found
end

-- The kind of a parsed device ('totp', 'backup_codes', ...), from its record.
local function device_kind(device)
  local ok, record = pcall(cjson.decode, device[1])
  if not ok or type(record) ~= 'table' or type(record.config) ~= 'table'
      or type(record.config.kind) ~= 'string' then
    corrupt('device record')
  end
  return record.config.kind
end

-- Deletes one device with its backup codes and challenge (keys: prefix .. id).
local function remove_device(devices, id, codes_prefix, challenge_prefix)
  redis.call('HDEL', devices, id, state_field(id))
  redis.call('DEL', codes_prefix .. id, challenge_prefix .. id)
end

-- Drops the devices hash once only the insertion counter is left, rather than keep a shell.
local function drop_if_empty(devices)
  if redis.call('HLEN', devices) == 1 then
    redis.call('DEL', devices)
  end
end

-- Deletes the devices of `found` (see all_devices) that have expired at `now`, and takes
-- them out of `found`.
local function prune_devices(devices, found, now, codes_prefix, challenge_prefix)
  local pruned = false
  for id, device in pairs(found) do
    if not is_live(device, now) then
      remove_device(devices, id, codes_prefix, challenge_prefix)
      found[id] = nil
      pruned = true
    end
  end
  if pruned then
    drop_if_empty(devices)
  end
end

-- HDEL of any number of fields: unpack() is bounded by the Lua stack, so in chunks.
local function hdel_all(key, fields)
  local CHUNK = 1000
  for first = 1, #fields, CHUNK do
    redis.call('HDEL', key, unpack(fields, first, math.min(first + CHUNK - 1, #fields)))
  end
end

-- ----- challenges ----------------------------------------------------------------------------
-- One hash per device with a pending out-of-band code: 'h' its hash, 'exp' and 'ra' its expiry
-- and resend time (ms), 'b' the login it was sent for ('' for none), 'mt' how many tries it
-- takes and 't' how many it has had. The key expires with the code.

-- The challenge's tries as {key, tries, max_tries}, or nil if there is none; fails on damaged
-- counts. A challenge stored before tries were counted has none left.
local function read_challenge_tries(key)
  local fields = redis.call('HMGET', key, 'h', 't', 'mt')
  if not fields[1] then
    return nil
  end
  return {
    key = key,
    tries = uint(fields[2] or '0', 'challenge tries'),
    max_tries = uint(fields[3] or '0', 'challenge max tries'),
  }
end

-- ----- sessions ------------------------------------------------------------------------------
-- One hash per user holds the user's sessions: field = session digest, value
-- "IDLE|EXP|CREATED|DEVICE|KIND|AT|REM|LOGIN|USER": the idle deadline (ms, the server's clock,
-- which the scripts alone write), then the record (see session.rs; the verification fields
-- DEVICE..REM are empty for a session not verified). Field 'c' tells whether the user has a
-- confirmed device ('1' or '0'), kept by every script that changes it, so that a guarded
-- request reads the session and the flag with one HMGET. The hash lives at least as long as
-- its longest idle deadline; sessions past theirs are pruned on every save and rotation.
local CONFIGURED = 'c'

-- The idle deadline of a stored session; fails on a damaged value.
local function session_deadline(value)
  local deadline = value:match('^(%d+)|')
  if not deadline then
    corrupt('session')
  end
  return uint(deadline, 'session deadline')
end

-- Whether a field of the sessions hash is a session (not the configured flag).
local function is_session_field(field)
  return field ~= CONFIGURED
end

-- Whether the stored session is live at `now` (ms, string).
local function session_live(value, now)
  return value ~= false and value ~= nil and gt(session_deadline(value), now)
end

-- The live session at `digest`, or nil.
local function live_session(sessions, digest, now)
  local value = redis.call('HGET', sessions, digest)
  if value and session_live(value, now) then
    return value
  end
  return nil
end

-- Tells every instance's local cache that the user of `key` (any key of the user) changed:
-- the user's tag on PREFIX:invalidate. Published by the writing script itself, so that no
-- write can forget it.
local function publish_change(key)
  local prefix, tag = key:match('^(.*):{([^}]*)}:')
  if not prefix then
    corrupt('key name')
  end
  redis.call('PUBLISH', prefix .. ':invalidate', tag)
end

-- Makes the key live at least `ttl` ms longer, so it never expires before a member.
local function extend_index(index, ttl)
  if redis.call('PTTL', index) < ttl then
    redis.call('PEXPIRE', index, ttl)
  end
end

-- Whether `devices` holds a live confirmed device at `now`.
local function has_confirmed(devices, now)
  for _, device in pairs(all_devices(devices)) do
    if is_confirmed(device) and is_live(device, now) then
      return true
    end
  end
  return false
end

-- Records in the sessions hash, if there is one, whether the user has a confirmed device.
local function set_configured(sessions, configured)
  if redis.call('EXISTS', sessions) == 1 then
    redis.call('HSET', sessions, CONFIGURED, configured and '1' or '0')
    publish_change(sessions)
  end
end

-- Deletes the sessions past their idle deadline at `now` (checking every value first).
local function prune_sessions(sessions, now)
  local all = redis.call('HGETALL', sessions)
  local dead = {}
  for i = 1, #all, 2 do
    if is_session_field(all[i]) and not session_live(all[i + 1], now) then
      table.insert(dead, all[i])
    end
  end
  hdel_all(sessions, dead)
end

-- Stores a session (its record without the deadline) for `ttl` ms (0: it is dead at once),
-- prunes the dead ones and records whether the user has a confirmed device.
local function put_session(sessions, devices, digest, record, ttl)
  local now = server_millis()
  local configured = has_confirmed(devices, tostring(now))
  prune_sessions(sessions, tostring(now))
  publish_change(sessions)
  if ttl <= 0 then
    redis.call('HDEL', sessions, digest)
    return
  end
  redis.call('HSET', sessions, digest, string.format('%d|', now + ttl) .. record,
    CONFIGURED, configured and '1' or '0')
  extend_index(sessions, ttl)
end

-- ----- remembered browsers ------------------------------------------------------------------
-- One hash per user: field = browser id, value = "EXP|LAST|JSON": expiry (ms), last use (ms,
-- empty if never) and the rest of the record as JSON. Times stay outside the JSON so that the
-- scripts never decode or re-encode it. The hash lives as long as its longest-lived browser;
-- expired browsers are pruned whenever the hash is read.

-- The expiry, last use and JSON of a stored browser; fails on a damaged value.
local function browser_parts(value)
  local exp, last, json = value:match('^(%d+)|(%d*)|(.+)$')
  if not exp then
    corrupt('remembered browser')
  end
  uint(exp, 'browser expiry')
  if last ~= '' then
    uint(last, 'browser last use')
  end
  return exp, last, json
end

-- The live browsers as {id1, value1, id2, value2, ...}; deletes the expired ones, after
-- checking every value.
local function live_browsers(browsers, now)
  local all = redis.call('HGETALL', browsers)
  local live, expired = {}, {}
  for i = 1, #all, 2 do
    if gt(browser_parts(all[i + 1]), now) then
      table.insert(live, all[i])
      table.insert(live, all[i + 1])
    else
      table.insert(expired, all[i])
    end
  end
  hdel_all(browsers, expired)
  return live
end

-- The ids of the browsers remembered through device `device`, expired ones included; fails
-- on any damaged value.
local function browsers_of(browsers, device)
  local all = redis.call('HGETALL', browsers)
  local ids = {}
  for i = 1, #all, 2 do
    local _, _, json = browser_parts(all[i + 1])
    local ok, record = pcall(cjson.decode, json)
    if not ok or type(record) ~= 'table' or type(record.device_id) ~= 'string' then
      corrupt('remembered browser')
    end
    if record.device_id == device then
      table.insert(ids, all[i])
    end
  end
  return ids
end

-- ----- revoking session verifications -------------------------------------------------------
-- Revoking empties the verification fields of a stored session, keeping the rest as stored.

-- The device that verified a stored session ('' if none) and the value without its
-- verification; fails on a damaged value.
local function session_verification(value)
  local head, device, tail = value:match('^(%d+|%d+|%d+|)([0-9a-f]*)|[a-z]?|%d*|[01]?|(.*)$')
  if not head then
    corrupt('session')
  end
  return device, head .. '||||' .. tail
end

-- The sessions in `sessions` verified by a device that `revoked(id)` accepts, as
-- {{digest, value without its verification}, ...}; checks every session read.
local function sessions_to_unverify(sessions, revoked)
  local all = redis.call('HGETALL', sessions)
  local changes = {}
  for i = 1, #all, 2 do
    if is_session_field(all[i]) then
      local device, cleared = session_verification(all[i + 1])
      if device ~= '' and revoked(device) then
        table.insert(changes, {all[i], cleared})
      end
    end
  end
  return changes
end

-- Writes what sessions_to_unverify found; the hash keeps its time to live.
local function unverify_sessions(sessions, changes)
  for _, change in ipairs(changes) do
    redis.call('HSET', sessions, change[1], change[2])
  end
end

-- ----- confirmations -----------------------------------------------------------------------
-- One hash per confirmation: 'rec' the record as JSON (its status and attempts as when
-- inserted), 'status' and 'attempts' the current ones, 'exp' when it expires (ms). The key
-- expires when the record is to be forgotten.

-- The confirmation's {rec, status, attempts, exp}, or nil; fails on a damaged one.
local function read_confirmation(key)
  local fields = redis.call('HMGET', key, 'rec', 'status', 'attempts', 'exp')
  if not fields[1] then
    return nil
  end
  if type(fields[2]) ~= 'string' or not fields[2]:match('^[a-z_]+$') then
    corrupt('confirmation status')
  end
  uint(fields[3], 'confirmation attempts')
  uint(fields[4], 'confirmation expiry')
  return fields
end

-- The later of the server's clock and the caller's `now`.
local function expiry_now(now)
  local server = server_now()
  if gt(now, server) then
    return now
  end
  return server
end

-- ----- the script ----------------------------------------------------------------------------
