-- KEYS: confirmation. ARGV: record JSON, status ('in_process' or 'confirmed').
-- Fills in a reserved confirmation: only one in process with no attempts yet. Returns 1 if it
-- was filled in.
local fields = read_confirmation(KEYS[1])
if not fields or fields[2] ~= 'in_process' or fields[3] ~= '0' then
  return 0
end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'status', ARGV[2])
return 1
