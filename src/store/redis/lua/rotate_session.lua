-- KEYS: sessions, devices (one tag). ARGV: old digest, new digest, record (without its
-- deadline), ttl (ms), the id of the device the record says verified it ('' if none), the
-- record without that verification. Moves the session only if the old one is still live, and
-- keeps the verification only if its device is still a confirmed device of the user. Returns
-- 1 or 0.
local sessions, devices = KEYS[1], KEYS[2]
if not live_session(sessions, ARGV[1], server_now()) then
  return 0
end
local record = verified_record(devices, ARGV[5], ARGV[3], ARGV[6])
redis.call('HDEL', sessions, ARGV[1])
put_session(sessions, devices, ARGV[2], record, tonumber(ARGV[4]))
return 1
