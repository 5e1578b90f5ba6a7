-- KEYS: one counter per bucket. ARGV: mode ('count', or 'check' to write nothing), now (ms),
-- then three values per bucket: the most events it takes, its cutoff (events at or before it
-- no longer count; '' while all do) and its window (ms), which is also the counter's time to
-- live after this event.
--
-- A counter is the times of its events, "t1,t2,...", in no particular order (the callers'
-- clocks differ). Counts `now` in every bucket, unless one is full: then nothing is written.
-- Returns {'counted'} ({'room'} when checking), or {'limited', i, oldest, j, oldest, ...}:
-- each full bucket's position (from 1) and the time of its oldest event that still counts.
local mode, now = ARGV[1], ARGV[2]
uint(now, 'now')

local buckets = {}
for i = 1, #KEYS do
  local max, cutoff, window = tonumber(ARGV[3 * i]), ARGV[3 * i + 1], ARGV[3 * i + 2]
  local live = {}
  local stored = redis.call('GET', KEYS[i])
  if stored then
    for event in string.gmatch(stored, '[^,]+') do
      uint(event, 'rate limit event')
      if cutoff == '' or gt(event, cutoff) then
        live[#live + 1] = event
      end
    end
  end
  buckets[i] = {live = live, max = max, window = window}
end

local full = {}
for i, bucket in ipairs(buckets) do
  if #bucket.live >= bucket.max then
    local oldest = bucket.live[1]
    for _, event in ipairs(bucket.live) do
      if gt(oldest, event) then
        oldest = event
      end
    end
    full[#full + 1] = i
    full[#full + 1] = oldest
  end
end
if #full > 0 then
  return {'limited', unpack(full)}
end
if mode == 'check' then
  return {'room'}
end

for i, bucket in ipairs(buckets) do
  bucket.live[#bucket.live + 1] = now
  redis.call('SET', KEYS[i], table.concat(bucket.live, ','), 'PX', bucket.window)
end
return {'counted'}
