-- KEYS: devices, browsers, sessions. ARGV: backup-code key prefix, challenge key prefix (the
-- device id completes each; same hash tag). Deletes every device of the user as delete_device
-- does, every remembered browser, and every session's verification. Returns how many live
-- devices there were.
local devices, browsers, index = KEYS[1], KEYS[2], KEYS[3]
local found = all_devices(devices)
local sessions = sessions_to_unverify(index, function()
  return true
end)

local now = server_now()
local count = 0
for id, device in pairs(found) do
  if is_live(device, now) then
    count = count + 1
  end
  redis.call('DEL', ARGV[1] .. id, ARGV[2] .. id)
end
redis.call('DEL', devices, browsers)
unverify_sessions(index, sessions)
set_configured(index, false)
return count
