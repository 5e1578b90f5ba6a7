-- KEYS: browsers. ARGV: browser id. Returns 1 if a live browser was deleted.
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then
  return 0
end
local live = gt(browser_parts(value), server_now())
redis.call('HDEL', KEYS[1], ARGV[1])
return live and 1 or 0
