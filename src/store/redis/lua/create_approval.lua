-- KEYS: push state, approval. ARGV: approval digest, record (JSON), binding ('' or '=' and
-- the binding), expires at, retain until, created at.
-- Returns {'conflict'}, {'blocked', until}, {'busy', until} or {'created'}.
local push, approval = KEYS[1], KEYS[2]
local digest, record, binding = ARGV[1], ARGV[2], ARGV[3]
local expires_at = uint(ARGV[4], 'approval expiry')
local retain_until = uint(ARGV[5], 'approval retention')
local now = later_now(ARGV[6])
if redis.call('EXISTS', approval) == 1 then
  return {'conflict'}
end
local state = redis.call('HMGET', push, 'blocked', 'live', 'live_exp')
if state[1] and gt(uint(state[1], 'push block'), now) then
  return {'blocked', state[1]}
end
if state[2] and gt(uint(state[3], 'live approval expiry'), now) then
  return {'busy', state[3]}
end
if gt(retain_until, server_now()) then
  redis.call('HSET', approval, 'rec', record, 'st', 'pending', 'exp', expires_at, 'b', binding)
  redis.call('PEXPIREAT', approval, gt(retain_until, I64_MAX) and I64_MAX or retain_until)
  redis.call('HSET', push, 'live', digest, 'live_exp', expires_at)
  fit_push_ttl(push)
end
return {'created'}
