-- KEYS: approval. ARGV: binding ('' or '=' and the binding). An approved approval of this
-- login becomes used; returns {record, 'used', answered at}, or nil.
local fields = redis.call('HMGET', KEYS[1], 'rec', 'st', 'b', 'ans')
if not fields[1] or fields[2] ~= 'approved' or fields[3] ~= ARGV[1] then
  return false
end
redis.call('HSET', KEYS[1], 'st', 'used')
return {fields[1], 'used', fields[4] or ''}
