
-- Shared by the push approval scripts (appended to the prelude, before each script).
--
-- An approval is a hash: 'rec' (the record as JSON, written once), 'st' (its status), 'exp'
-- (when it expires unanswered), 'b' (the login it is bound to, as challenges store theirs) and
-- 'ans' (when it was answered). The user's push state is a hash: 'live' and 'live_exp' (the
-- digest and expiry of the live approval) and 'blocked' (until when a report stops pushes).

-- Keeps a user's push state until its live approval or its block ends, whichever is later.
local function fit_push_ttl(push)
  local state = redis.call('HMGET', push, 'live_exp', 'blocked')
  local last = state[1] or state[2]
  if state[1] and state[2] and gt(state[2], state[1]) then
    last = state[2]
  end
  if last and gt(last, server_now()) then
    redis.call('PEXPIREAT', push, gt(last, I64_MAX) and I64_MAX or last)
  else
    redis.call('DEL', push)
  end
end

-- The later of the caller's time and the server's.
local function later_now(caller_now)
  local server = server_now()
  local now = uint(caller_now, 'time')
  if gt(server, now) then
    return server
  end
  return now
end
