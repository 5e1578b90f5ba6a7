-- KEYS: devices, user, backup codes, challenge. ARGV: device id, now, proof kind ('counter',
-- 'code' or 'challenge'), proof value (next counter or code hash), detail (the drift of a
-- counter, the binding of a challenge as put_challenge stores it, else ''), then the ids of
-- the devices to refund. Returns 1, or 0 if the proof is stale, changing nothing but this: a
-- challenge refused after its last try is deleted.
local devices, user, codes, challenge = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, kind, value, detail = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local live_now = expiry_now(now)
local device = read_device(devices, id, live_now)
if not device then
  return 0
end
-- Refunds are read and checked first too; a device named twice is refunded twice.
local refunds = {}
for i = 6, #ARGV do
  local other = ARGV[i]
  if other ~= id and refunds[other] == nil then
    refunds[other] = read_device(devices, other, live_now) or false
  end
end

if kind == 'counter' then
  if not gt(value, device[3]) then
    return 0
  end
  device[3], device[4] = value, detail
elseif kind == 'code' then
  if redis.call('SREM', codes, value) == 0 then
    return 0
  end
elseif kind == 'challenge' then
  local stored = redis.call('HMGET', challenge, 'h', 'exp', 'b', 'mt', 't')
  if not stored[1] then
    return 0
  end
  local expires_at = uint(stored[2], 'challenge expiry')
  -- A challenge stored before tries were counted has none left.
  local max_tries = uint(stored[4] or '0', 'challenge max tries')
  local tries = uint(stored[5] or '0', 'challenge tries')
  local live = gt(expires_at, now) and gt(expires_at, server_now())
  if not (live and stored[1] == value and (stored[3] or '') == detail) then
    if live and not gt(max_tries, tries) then
      -- This was the code's last try, and it was wrong: the code dies now.
      redis.call('DEL', challenge)
    end
    return 0
  end
  redis.call('DEL', challenge)
else
  return redis.error_reply('ERR unknown proof kind')
end

device[5], device[6], device[7] = '0', false, now
write_state(devices, id, device)
for i = 6, #ARGV do
  local refunded = refunds[ARGV[i]]
  if refunded then
    refunded[5] = tostring(math.max(tonumber(refunded[5]) - 1, 0))
  end
end
for other, refunded in pairs(refunds) do
  if refunded then
    write_state(devices, other, refunded)
  end
end
redis.call('HDEL', user, 'failures', 'locked_until')
return 1
