-- KEYS: session index, browsers. ARGV: session key prefix (the digest completes it; same hash
-- tag as the index). Deletes every session of the user and every remembered browser. Returns
-- how many sessions were alive.
local index, prefix = KEYS[1], ARGV[1]
local count = 0
for _, digest in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  count = count + redis.call('DEL', prefix .. digest)
end
redis.call('DEL', index, KEYS[2])
return count
