-- KEYS: devices. ARGV: id, record, next counter, drift, failures, last failure at, last used at
-- (the last two '' when unset). Returns 1, or 0 if the user has a device with that id.
local devices, id = KEYS[1], ARGV[1]
if device_exists(devices, id) then
  return 0
end
local seq = redis.call('HINCRBY', devices, '#seq', 1)
local record, seq_field, n, d, f, lf, lu = device_fields(id)
redis.call('HSET', devices, record, ARGV[2], seq_field, seq, n, ARGV[3], d, ARGV[4], f, ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', devices, lf, ARGV[6])
end
if ARGV[7] ~= '' then
  redis.call('HSET', devices, lu, ARGV[7])
end
return 1
