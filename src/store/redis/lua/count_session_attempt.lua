-- KEYS: the session's attempt counter. ARGV: time to live (ms) from the first attempt.
-- Returns the count, this attempt included.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[1]), 1))
end
return count
