-- KEYS: sessions. ARGV: digest, idle time (ms). Moves the live session's idle deadline to the
-- idle time from now, keeping the record as stored (a revocation meanwhile stays). Returns 1,
-- or 0 if the session is not live (it stays ended).
local sessions, digest, idle = KEYS[1], ARGV[1], tonumber(ARGV[2])
local now = server_millis()
local value = live_session(sessions, digest, tostring(now))
if not value then
  return 0
end
local record = value:sub(#session_deadline(value) + 2)
redis.call('HSET', sessions, digest, string.format('%d|', now + idle) .. record)
extend_index(sessions, idle)
return 1
