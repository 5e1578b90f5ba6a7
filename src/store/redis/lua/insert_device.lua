-- KEYS: devices. ARGV: id, record, next counter, drift, failures, last failure at, last used at
-- (the last two '' when unset). Returns 1, or 0 if the user has a device with that id.
local devices, id = KEYS[1], ARGV[1]
if device_exists(devices, id) then
  return 0
end
local seq = redis.call('HINCRBY', devices, '#seq', 1)
redis.call('HSET', devices, id, ARGV[2])
write_state(devices, id, {ARGV[2], seq, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]})
return 1
