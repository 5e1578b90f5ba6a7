-- KEYS: session, session index. ARGV: digest, idle time (ms). Returns the record, its time to
-- live reset to the idle time, or nil.
local key, index, digest, idle = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local record = redis.call('GET', key)
if not record then
  return false
end
if idle <= 0 then
  redis.call('DEL', key)
  redis.call('ZREM', index, digest)
  return record
end
redis.call('PEXPIRE', key, idle)
redis.call('ZADD', index, server_millis() + idle, digest)
extend_index(index, idle)
return record
