-- KEYS: sessions, browsers. Deletes every session of the user and every remembered browser.
-- Returns how many sessions were live.
local sessions = KEYS[1]
local now = server_now()
local all = redis.call('HGETALL', sessions)
local count = 0
for i = 1, #all, 2 do
  if is_session_field(all[i]) and session_live(all[i + 1], now) then
    count = count + 1
  end
end
redis.call('DEL', sessions, KEYS[2])
publish_change(sessions)
return count
