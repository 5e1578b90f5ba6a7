-- KEYS: browsers, devices, user. ARGV: browser id, device id, now (ms).
-- Returns {browser value or nil, device (see parse_device) or nil, stamp}; a live browser's
-- last use becomes `now` (the value returned is the one before).
local browsers, devices, user = KEYS[1], KEYS[2], KEYS[3]
local id, now = ARGV[1], ARGV[3]
-- Expiry is judged by the server's clock, or the caller's if it is ahead.
local expiry_now = server_now()
if gt(now, expiry_now) then
  expiry_now = now
end
local device = read_device(devices, ARGV[2], expiry_now) or false
local stamp = redis.call('HGET', user, 'stamp') or '0'
local value = redis.call('HGET', browsers, id)
if not value then
  return {false, device, stamp}
end
local exp, _, json = browser_parts(value)
if not gt(exp, expiry_now) then
  redis.call('HDEL', browsers, id)
  return {false, device, stamp}
end
redis.call('HSET', browsers, id, exp .. '|' .. now .. '|' .. json)
return {value, device, stamp}
