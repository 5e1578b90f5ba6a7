-- KEYS: session index. ARGV: session key prefix (the digest completes it; same hash tag as
-- the index). Deletes every session of the user. Returns how many were alive.
local index, prefix = KEYS[1], ARGV[1]
local count = 0
for _, digest in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  count = count + redis.call('DEL', prefix .. digest)
end
redis.call('DEL', index)
return count
