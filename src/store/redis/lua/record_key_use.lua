-- KEYS: devices, user. ARGV: device id, signature counter, now. Records a verification by a
-- confirmed security key if its signature counter moves forward from the stored one (or both
-- are 0: the key keeps no counter). Returns {'recorded'}, {'regressed', stored counter} or
-- {'missing'}, changing nothing unless recorded.
local devices, user = KEYS[1], KEYS[2]
local id, now = ARGV[1], ARGV[3]
local counter = uint(ARGV[2], 'signature counter')

local device = read_device(devices, id, expiry_now(now))
if not device or not is_confirmed(device) or device_kind(device) ~= 'webauthn' then
  return {'missing'}
end
local stored = device[3]
if not ((counter == '0' and stored == '0') or gt(counter, stored)) then
  return {'regressed', stored}
end
device[3], device[5], device[6], device[7] = counter, '0', false, now
write_state(devices, id, device)
redis.call('HDEL', user, 'failures', 'locked_until')
return {'recorded'}
