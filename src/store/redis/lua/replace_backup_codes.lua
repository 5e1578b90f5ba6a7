-- KEYS: devices, backup codes. ARGV: device id, code hashes... Replaces the device's whole set.
-- Returns 1, or 0 if there is no such device.
local devices, codes = KEYS[1], KEYS[2]
if not device_exists(devices, ARGV[1]) then
  return 0
end
redis.call('DEL', codes)
-- unpack() is bounded by the Lua stack: add the hashes in chunks.
local CHUNK = 1000
for first = 2, #ARGV, CHUNK do
  redis.call('SADD', codes, unpack(ARGV, first, math.min(first + CHUNK - 1, #ARGV)))
end
return 1
