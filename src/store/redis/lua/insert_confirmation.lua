-- KEYS: confirmation. ARGV: record JSON, status, attempts, expires at, retain until (ms).
-- Returns 0 if the key exists, else stores it (forgotten at `retain until`) and returns 1.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  return 0
end
uint(ARGV[3], 'confirmation attempts')
uint(ARGV[4], 'confirmation expiry')
local retain = uint(ARGV[5], 'confirmation retention')
if not gt(retain, server_now()) then
  return 1
end
redis.call('HSET', key, 'rec', ARGV[1], 'status', ARGV[2], 'attempts', ARGV[3], 'exp', ARGV[4])
redis.call('PEXPIREAT', key, gt(retain, I64_MAX) and I64_MAX or retain)
return 1
