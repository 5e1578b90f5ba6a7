-- KEYS: devices, backup codes, browsers. ARGV: device id, code hashes... Replaces the live
-- device's whole set and deletes the browsers remembered through the device. Returns 1, or 0
-- if there is no such device.
local devices, codes, browsers = KEYS[1], KEYS[2], KEYS[3]
if not read_device(devices, ARGV[1], server_now()) then
  return 0
end
local remembered = browsers_of(browsers, ARGV[1])
redis.call('DEL', codes)
-- unpack() is bounded by the Lua stack: add the hashes in chunks.
local CHUNK = 1000
for first = 2, #ARGV, CHUNK do
  redis.call('SADD', codes, unpack(ARGV, first, math.min(first + CHUNK - 1, #ARGV)))
end
hdel_all(browsers, remembered)
return 1
