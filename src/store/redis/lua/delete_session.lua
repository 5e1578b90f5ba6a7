-- KEYS: session, session index. ARGV: digest. Returns 1 if the session existed.
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
