-- KEYS: sessions. ARGV: digest. Returns 1 if the session was live.
local live = live_session(KEYS[1], ARGV[1], server_now())
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  publish_change(KEYS[1])
end
return live and 1 or 0
