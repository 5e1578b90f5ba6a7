-- KEYS: session, session index. ARGV: digest, idle time (ms), idle time of a session that is
-- not verified yet (ms). Returns the record, its time to live reset to the idle time that
-- fits it, or nil.
local key, index, digest = KEYS[1], KEYS[2], ARGV[1]
local record = redis.call('GET', key)
if not record then
  return false
end
local ok, decoded = pcall(cjson.decode, record)
if not ok or type(decoded) ~= 'table' then
  corrupt('session')
end
local verified = decoded.verified ~= nil and decoded.verified ~= cjson.null
local idle = tonumber(verified and ARGV[2] or ARGV[3])
if idle <= 0 then
  redis.call('DEL', key)
  redis.call('ZREM', index, digest)
  return record
end
redis.call('PEXPIRE', key, idle)
redis.call('ZADD', index, server_millis() + idle, digest)
extend_index(index, idle)
return record
