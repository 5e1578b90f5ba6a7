-- KEYS: confirmation. ARGV: new status ('confirmed' or 'failed'), now (ms).
-- Moves an in-process, unexpired confirmation to the new status. Returns 1 if it moved.
local fields = read_confirmation(KEYS[1])
if not fields or fields[2] ~= 'in_process' or not gt(fields[4], expiry_now(ARGV[2])) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
return 1
