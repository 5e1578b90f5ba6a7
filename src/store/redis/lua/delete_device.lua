-- KEYS: devices, backup codes, challenge. ARGV: id. Deletes the device with its state, codes
-- and challenge. Returns 1 if it existed.
local devices, id = KEYS[1], ARGV[1]
local existed = device_exists(devices, id)
if existed then
  redis.call('HDEL', devices, id, state_field(id))
  -- Only the insertion counter left: drop it too rather than keep an empty shell.
  if redis.call('HLEN', devices) == 1 then
    redis.call('DEL', devices)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
return existed and 1 or 0
