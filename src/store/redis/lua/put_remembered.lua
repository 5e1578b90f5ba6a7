-- KEYS: browsers, user. ARGV: browser id, value ("EXP|LAST|JSON"), expires at (ms).
-- Stores the browser unless already expired. Returns the user's stamp.
local browsers, user, id, value, expires_at = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
browser_parts(value)
local server = server_now()
live_browsers(browsers, server)
if gt(expires_at, server) then
  redis.call('HSET', browsers, id, value)
  local remaining = tonumber(expires_at) - server_millis()
  local ttl = redis.call('PTTL', browsers)
  if ttl < remaining then
    redis.call('PEXPIREAT', browsers, gt(expires_at, I64_MAX) and I64_MAX or expires_at)
  end
end
return redis.call('HGET', user, 'stamp') or '0'
