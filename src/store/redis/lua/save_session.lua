-- KEYS: sessions, devices. ARGV: digest, record (without its deadline), ttl (ms), the id of
-- the device the record says verified it ('' if none), the record without that verification.
-- A device deleted meanwhile does not verify: the session is saved unverified.
local record = verified_record(KEYS[2], ARGV[4], ARGV[2], ARGV[5])
put_session(KEYS[1], KEYS[2], ARGV[1], record, tonumber(ARGV[3]))
return 1
