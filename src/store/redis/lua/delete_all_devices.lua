-- KEYS: devices. ARGV: backup-code key prefix, challenge key prefix (the device id completes
-- each; same hash tag as the devices key). Deletes every device of the user as delete_device
-- does. Returns how many there were.
local devices = KEYS[1]
local all = redis.call('HGETALL', devices)
local count = 0
for i = 1, #all, 2 do
  local field = all[i]
  if is_record_field(field) then
    count = count + 1
    redis.call('DEL', ARGV[1] .. field, ARGV[2] .. field)
  end
end
redis.call('DEL', devices)
return count
