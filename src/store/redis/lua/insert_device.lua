-- KEYS: devices, sessions. ARGV: id, record, next counter, drift, failures, last failure at, last used
-- at (the last two '' when unset), confirmed ('1' or '0'), pending until ('' for none),
-- backup codes ('1' if the device holds backup codes, else '0'), max devices, max pending,
-- backup-code key prefix, challenge key prefix (the device id completes each; same hash tag).
-- Prunes expired devices, then checks the user's live devices. Returns {'inserted'},
-- {'conflict'}, {'backup', device} (the user's backup-code device, see parse_device),
-- {'too_many'} or {'too_many_pending'}.
local devices, id = KEYS[1], ARGV[1]
local confirmed, pending_until, backup = ARGV[8], ARGV[9], ARGV[10] == '1'
local max_devices, max_pending = tonumber(ARGV[11]), tonumber(ARGV[12])
local now = server_now()
local new = parse_device(ARGV[2], table.concat({'0', ARGV[3], ARGV[4], ARGV[5], ARGV[6],
  ARGV[7], confirmed, pending_until}, ','))

local found = all_devices(devices)
local kinds = {}
if backup then
  for other, device in pairs(found) do
    kinds[other] = device_kind(device)
  end
end
prune_devices(devices, found, now, ARGV[13], ARGV[14])

if found[id] then
  return {'conflict'}
end
local count, pending = 0, 0
for other, device in pairs(found) do
  if kinds[other] == 'backup_codes' then
    return {'backup', device}
  end
  count = count + 1
  if not is_confirmed(device) then
    pending = pending + 1
  end
end
if count >= max_devices then
  return {'too_many'}
end
if not is_confirmed(new) and pending >= max_pending then
  return {'too_many_pending'}
end

-- A device already past its deadline is as good as gone: nothing to store.
if is_live(new, now) then
  new[2] = redis.call('HINCRBY', devices, '#seq', 1)
  redis.call('HSET', devices, id, ARGV[2])
  write_state(devices, id, new)
  if is_confirmed(new) then
    set_configured(KEYS[2], true)
  end
end
return {'inserted'}
