-- KEYS: confirmation. ARGV: max attempts, now (ms).
-- Returns {'missing'}, or {'refused' | 'granted', rec, status, attempts} as it is afterwards.
local key = KEYS[1]
local fields = read_confirmation(key)
if not fields then
  return {'missing'}
end
local rec, status, attempts, exp = fields[1], fields[2], fields[3], fields[4]
if status ~= 'in_process' or not gt(exp, expiry_now(ARGV[2])) then
  return {'refused', rec, status, attempts}
end
if not gt(ARGV[1], attempts) then
  redis.call('HSET', key, 'status', 'failed')
  return {'refused', rec, 'failed', attempts}
end
attempts = tostring(redis.call('HINCRBY', key, 'attempts', 1))
return {'granted', rec, status, attempts}
