-- KEYS: devices. ARGV: id, record. Replaces the record only, never the state, and only if the
-- device still exists. Returns 1 or 0.
local devices, id = KEYS[1], ARGV[1]
if not device_exists(devices, id) then
  return 0
end
redis.call('HSET', devices, id, ARGV[2])
return 1
