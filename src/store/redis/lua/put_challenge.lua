-- KEYS: devices, challenge. ARGV: device id, now, code hash, expires at, resend after,
-- binding ('' for none, else '=' and the binding), max tries, tries.
-- Returns {'missing'}, {'cooldown', resend after} or {'stored'}.
local devices, challenge = KEYS[1], KEYS[2]
local hash, expires_at, resend_after = ARGV[3], ARGV[4], ARGV[5]
local binding, max_tries, tries = ARGV[6], uint(ARGV[7], 'max tries'), uint(ARGV[8], 'tries')
-- Expiry is judged by the server's clock, or the caller's if it is ahead.
local server = server_now()
local now = ARGV[2]
if gt(server, now) then
  now = server
end
if not read_device(devices, ARGV[1], now) then
  return {'missing'}
end
local current = redis.call('HMGET', challenge, 'exp', 'ra')
if current[1] then
  local current_expiry = uint(current[1], 'challenge expiry')
  local current_resend = uint(current[2], 'challenge resend time')
  if gt(current_expiry, now) and gt(current_resend, now) then
    return {'cooldown', current_resend}
  end
end
redis.call('DEL', challenge)
-- A challenge already past its expiry is as good as gone; PXAT cannot take it anyway.
if gt(expires_at, server) then
  redis.call('HSET', challenge, 'h', hash, 'exp', expires_at, 'ra', resend_after, 'b', binding,
    'mt', max_tries, 't', tries)
  redis.call('PEXPIREAT', challenge, gt(expires_at, I64_MAX) and I64_MAX or expires_at)
end
return {'stored'}
