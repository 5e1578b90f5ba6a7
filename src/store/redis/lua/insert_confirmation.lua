-- KEYS: confirmation, the user's confirmation index. ARGV: record JSON, status, attempts,
-- expires at, retain until, created at (ms), the most open confirmations, the prefix of the
-- user's confirmation keys (the index's members complete it; same hash tag), and the digest
-- that completes this one's.
--
-- The index is a sorted set of the user's confirmation digests, scored by expiry. Open
-- confirmations are those in process or confirmed and unexpired; members that are not are
-- pruned here.
-- Returns 0 if the key exists, 'too_many' if the user has the most open confirmations, else
-- stores it (forgotten at `retain until`) and returns 1.
local key, index = KEYS[1], KEYS[2]
if redis.call('EXISTS', key) == 1 then
  return 0
end
uint(ARGV[3], 'confirmation attempts')
local expires_at = uint(ARGV[4], 'confirmation expiry')
local retain = uint(ARGV[5], 'confirmation retention')
local now = expiry_now(uint(ARGV[6], 'confirmation request time'))
local max_open, prefix, digest = tonumber(ARGV[7]), ARGV[8], ARGV[9]

local open, closed = 0, {}
for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local fields = redis.call('HMGET', prefix .. member, 'status', 'exp')
  local status, exp = fields[1], fields[2]
  if (status == 'in_process' or status == 'confirmed') and exp and gt(uint(exp, 'confirmation expiry'), now) then
    open = open + 1
  else
    closed[#closed + 1] = member
  end
end
if #closed > 0 then
  redis.call('ZREM', index, unpack(closed))
end
if open >= max_open then
  return 'too_many'
end

if not gt(retain, server_now()) then
  return 1
end
redis.call('HSET', key, 'rec', ARGV[1], 'status', ARGV[2], 'attempts', ARGV[3], 'exp', expires_at)
redis.call('PEXPIREAT', key, gt(retain, I64_MAX) and I64_MAX or retain)
if gt(expires_at, server_now()) then
  -- Scores are doubles, exact for any time before the year 285,000; nothing reads them but
  -- ZADD. The index lives as long as its longest-lived open member can.
  redis.call('ZADD', index, expires_at, digest)
  if redis.call('PTTL', index) < tonumber(expires_at) - server_millis() then
    redis.call('PEXPIREAT', index, gt(expires_at, I64_MAX) and I64_MAX or expires_at)
  end
end
return 1
