-- KEYS: devices, user, then the challenge of each device named. ARGV: now, user failure
-- limit, lock end (now + lock period), purpose
-- ('verify' or 'confirm'), number of devices N, N device ids, then the throttle thresholds
-- t[0..C]: a device with F failures, the last at L, is throttled if L > t[min(F, C)] ('*':
-- always). The client derives the thresholds from its throttle policy, so that this script
-- does no time arithmetic.
--
-- Returns {'locked', until}, or one slot per device: {'missing'}, {'not_confirmed'} (an
-- unconfirmed device, to verify), {'already_confirmed'} (a confirmed device, to confirm),
-- {'throttled', device} or {'allowed', device}, each device (see parse_device) as it was
-- before this attempt. Only allowed devices are counted, for the device and for the user.
--
-- Each allowed attempt also takes one try of its device's challenge, if it has one ('t' up
-- by one); a challenge that has had its 'mt' tries is deleted instead.
local devices, user = KEYS[1], KEYS[2]
local now, limit, lock_end = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local verifying = ARGV[4] == 'verify'
local count = tonumber(ARGV[5])
local first_id = 5
local thresholds = {}
for i = first_id + 1 + count, #ARGV do
  thresholds[#thresholds + 1] = ARGV[i]
end

local locked_until = redis.call('HGET', user, 'locked_until')
if locked_until and gt(uint(locked_until, 'user lock'), now) then
  return {'locked', locked_until}
end
local user_failures = 0
if not locked_until then
  user_failures = tonumber(uint(redis.call('HGET', user, 'failures') or '0', 'user failures'))
end

-- Read and check every device before the first write. A device named twice sees the effect of
-- its first slot, as if the slots were taken one after another.
local live_now = expiry_now(now)
local current, challenges = {}, {}
for i = 1, count do
  local id = ARGV[first_id + i]
  if current[id] == nil then
    current[id] = read_device(devices, id, live_now) or false
    challenges[id] = read_challenge_tries(KEYS[2 + i]) or false
  end
end

-- Takes one try of the device's challenge, or deletes a challenge that has none left.
local function take_challenge_try(id)
  local challenge = challenges[id]
  if not challenge then
    return
  end
  if gt(challenge.max_tries, challenge.tries) then
    -- Tries never exceed max tries, a u32: exact as a Lua number.
    challenge.tries = tostring(tonumber(challenge.tries) + 1)
    redis.call('HSET', challenge.key, 't', challenge.tries)
  else
    redis.call('DEL', challenge.key)
    challenges[id] = false
  end
end

local function throttled(device)
  if not device[6] then
    return false
  end
  local threshold = thresholds[math.min(tonumber(device[5]), #thresholds - 1) + 1]
  return threshold == '*' or gt(device[6], threshold)
end

local slots = {}
local any_allowed = false
for i = 1, count do
  local id = ARGV[first_id + i]
  local device = current[id]
  if not device then
    slots[i] = {'missing'}
  elseif verifying and not is_confirmed(device) then
    slots[i] = {'not_confirmed'}
  elseif not verifying and is_confirmed(device) then
    slots[i] = {'already_confirmed'}
  elseif throttled(device) then
    slots[i] = {'throttled', device}
  else
    slots[i] = {'allowed', device}
    local failures = tostring(math.min(tonumber(device[5]) + 1, U32_MAX))
    local counted = {device[1], device[2], device[3], device[4], failures, now, device[7],
      device[8], device[9]}
    write_state(devices, id, counted)
    current[id] = counted
    take_challenge_try(id)
    any_allowed = true
  end
end

if locked_until then
  -- The lock has ended: it goes, with the count that caused it.
  redis.call('HDEL', user, 'locked_until', 'failures')
end
if any_allowed then
  user_failures = math.min(user_failures + 1, U32_MAX)
  redis.call('HSET', user, 'failures', user_failures)
  if user_failures >= limit then
    redis.call('HSET', user, 'locked_until', lock_end)
  end
end
return slots
