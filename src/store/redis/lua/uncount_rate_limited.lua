-- KEYS: counters (see count_rate_limited.lua). ARGV: now (ms).
-- Takes one event at `now` out of each counter that has one, keeping its time to live.
for i = 1, #KEYS do
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local kept, removed = {}, false
    for event in string.gmatch(stored, '[^,]+') do
      if event == ARGV[1] and not removed then
        removed = true
      else
        kept[#kept + 1] = event
      end
    end
    if removed and #kept == 0 then
      redis.call('DEL', KEYS[i])
    elseif removed then
      redis.call('SET', KEYS[i], table.concat(kept, ','), 'KEEPTTL')
    end
  end
end
return 1
