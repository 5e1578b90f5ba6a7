-- KEYS: old session, new session, session index, devices (one tag). ARGV: old digest, new
-- digest, record, ttl (ms), the id of the device the record says verified it ('' if none),
-- the record without that verification. Moves the session only if the old one still exists,
-- and keeps the verification only if its device is still a confirmed device of the user.
-- Returns 1 or 0.
local old, new, index = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', old) == 0 then
  return 0
end
local record = verified_record(KEYS[4], ARGV[5], ARGV[3], ARGV[6])
redis.call('DEL', old)
redis.call('ZREM', index, ARGV[1])
put_session(new, index, ARGV[2], record, tonumber(ARGV[4]))
return 1
