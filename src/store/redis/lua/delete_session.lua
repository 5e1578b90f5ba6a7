-- KEYS: sessions. ARGV: digest. Deletes the session, even a damaged one (a record that cannot
-- be read must not keep its holder from logging in again). Returns 1 if it was live.
local value = redis.call('HGET', KEYS[1], ARGV[1])
local deadline = value and value:match('^(%d+)|')
local live = deadline and gt(deadline, server_now())
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  publish_change(KEYS[1])
end
return live and 1 or 0
