-- KEYS: challenge. ARGV: code hash. Deletes the challenge only if it has this hash.
-- Returns 1 if deleted.
if redis.call('HGET', KEYS[1], 'h') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
