-- KEYS: browsers. Returns how many live browsers were deleted.
local live = live_browsers(KEYS[1], server_now())
redis.call('DEL', KEYS[1])
return #live / 2
