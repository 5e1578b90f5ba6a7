-- KEYS: browsers. Returns the live browsers as {id1, value1, ...}.
return live_browsers(KEYS[1], server_now())
