-- KEYS: old session, new session, session index (one tag). ARGV: old digest, new digest,
-- record, ttl (ms). Moves the session only if the old one still exists. Returns 1 or 0.
local old, new, index = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', old) == 0 then
  return 0
end
redis.call('DEL', old)
redis.call('ZREM', index, ARGV[1])
put_session(new, index, ARGV[2], ARGV[3], tonumber(ARGV[4]))
return 1
