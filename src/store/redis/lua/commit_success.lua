-- KEYS: devices, user, backup codes, challenge. ARGV: device id, now, proof kind ('counter',
-- 'code' or 'challenge'), proof value (next counter or code hash), drift ('' unless counter),
-- then the ids of the devices to refund. Returns 1, or 0 (changing nothing) if the proof is
-- stale.
local devices, user, codes, challenge = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, kind, value, drift = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local device = read_device(devices, id)
if not device then
  return 0
end
check_device(device)
-- Refunds are read and checked first too; a device named twice is refunded twice.
local refunds = {}
for i = 6, #ARGV do
  local other = ARGV[i]
  if other ~= id and refunds[other] == nil then
    local refunded = read_device(devices, other)
    refunds[other] = refunded and tonumber(check_device(refunded)[5]) or false
  end
end

if kind == 'counter' then
  if not gt(value, device[3]) then
    return 0
  end
  local _, _, n, d = device_fields(id)
  redis.call('HSET', devices, n, value, d, drift)
elseif kind == 'code' then
  if redis.call('SREM', codes, value) == 0 then
    return 0
  end
elseif kind == 'challenge' then
  local stored = redis.call('HMGET', challenge, 'h', 'exp')
  if stored[1] ~= value then
    return 0
  end
  local expires_at = uint(stored[2], 'challenge expiry')
  if not (gt(expires_at, now) and gt(expires_at, server_now())) then
    return 0
  end
  redis.call('DEL', challenge)
else
  return redis.error_reply('ERR unknown proof kind')
end

local _, _, _, _, f, lf, lu = device_fields(id)
redis.call('HSET', devices, f, 0, lu, now)
redis.call('HDEL', devices, lf)
for i = 6, #ARGV do
  local other = ARGV[i]
  local failures = refunds[other]
  if failures then
    failures = math.max(failures - 1, 0)
    refunds[other] = failures
    local _, _, _, _, other_f = device_fields(other)
    redis.call('HSET', devices, other_f, failures)
  end
end
redis.call('HDEL', user, 'failures', 'locked_until')
return 1
