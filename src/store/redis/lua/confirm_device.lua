-- KEYS: devices, sessions. ARGV: id, only if first ('1' or '0'), backup-code key prefix, challenge key
-- prefix. Prunes expired devices, then confirms the live, unconfirmed device: it loses its
-- deadline; if it is then the user's only confirmed device, every other unconfirmed device is
-- deleted with its codes and challenge. Returns 'first', 'confirmed', 'already_confirmed',
-- 'not_first' or 'missing'. The sessions hash records that the user has a confirmed device.
local devices, id, only_if_first = KEYS[1], ARGV[1], ARGV[2] == '1'
local codes_prefix, challenge_prefix = ARGV[3], ARGV[4]
local found = all_devices(devices)
prune_devices(devices, found, server_now(), codes_prefix, challenge_prefix)
local target = found[id]
if not target then
  return 'missing'
end
if is_confirmed(target) then
  return 'already_confirmed'
end
local first = true
for _, device in pairs(found) do
  if is_confirmed(device) then
    first = false
  end
end
if only_if_first and not first then
  return 'not_first'
end

target[8], target[9] = '1', false
write_state(devices, id, target)
set_configured(KEYS[2], true)
if not first then
  return 'confirmed'
end
for other, device in pairs(found) do
  if not is_confirmed(device) and other ~= id then
    remove_device(devices, other, codes_prefix, challenge_prefix)
  end
end
return 'first'
