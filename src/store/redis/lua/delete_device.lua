-- KEYS: devices, backup codes, challenge, browsers, sessions. ARGV: id, backup-code key
-- prefix, challenge key prefix (same hash tag). Prunes expired devices, deletes the device
-- with its state, codes and challenge, the browsers remembered through it, and the
-- verification of every session it verified; records whether a confirmed device is left.
-- Returns 1 if it existed (live).
local devices, codes, challenge, browsers, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local found = all_devices(devices)
local remembered = browsers_of(browsers, id)
local sessions = sessions_to_unverify(index, function(device)
  return device == id
end)

prune_devices(devices, found, server_now(), ARGV[2], ARGV[3])
local existed = found[id] ~= nil
if existed then
  redis.call('HDEL', devices, id, state_field(id))
  drop_if_empty(devices)
end
redis.call('DEL', codes, challenge)
hdel_all(browsers, remembered)
unverify_sessions(index, sessions)
local configured = false
for other, device in pairs(found) do
  if other ~= id and is_confirmed(device) then
    configured = true
  end
end
set_configured(index, configured)
return existed and 1 or 0
