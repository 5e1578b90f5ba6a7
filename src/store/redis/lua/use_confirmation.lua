-- KEYS: confirmation. ARGV: now (ms). A confirmed, unexpired confirmation becomes used;
-- returns {rec, 'used', attempts}, or nil.
local fields = read_confirmation(KEYS[1])
if not fields or fields[2] ~= 'confirmed' or not gt(fields[4], expiry_now(ARGV[1])) then
  return false
end
redis.call('HSET', KEYS[1], 'status', 'used')
return {fields[1], 'used', fields[3]}
