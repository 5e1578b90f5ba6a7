-- KEYS: push state, approval. ARGV: approval digest, status ('approved', 'denied',
-- 'reported' or 'expired'), block until ('' for none), now.
-- A pending approval is answered while unexpired, or expires once expired; it stops being the
-- user's live one, and a report moves the user's block later. Returns {record, status,
-- answered at ('' for none)}, or nil if nothing changed.
local push, approval = KEYS[1], KEYS[2]
local digest, status, block = ARGV[1], ARGV[2], ARGV[3]
local now = later_now(ARGV[4])
local fields = redis.call('HMGET', approval, 'rec', 'st', 'exp')
if not fields[1] or fields[2] ~= 'pending' then
  return false
end
local expired = not gt(uint(fields[3], 'approval expiry'), now)
if expired ~= (status == 'expired') then
  return false
end
local answered = ''
if status ~= 'expired' then
  answered = now
end
redis.call('HSET', approval, 'st', status, 'ans', answered)
if redis.call('HGET', push, 'live') == digest then
  redis.call('HDEL', push, 'live', 'live_exp')
end
if status == 'reported' and block ~= '' then
  local current = redis.call('HGET', push, 'blocked')
  if not current or gt(uint(block, 'push block'), current) then
    redis.call('HSET', push, 'blocked', block)
  end
end
fit_push_ttl(push)
return {fields[1], status, answered}
