-- KEYS: devices. ARGV: id, record, backup-code key prefix, challenge key prefix. Replaces the
-- record only, never the state or the confirmation, and only if the device is still live.
-- Prunes expired devices. Returns 1 or 0.
local devices, id = KEYS[1], ARGV[1]
local found = all_devices(devices)
prune_devices(devices, found, server_now(), ARGV[3], ARGV[4])
if not found[id] then
  return 0
end
redis.call('HSET', devices, id, ARGV[2])
return 1
