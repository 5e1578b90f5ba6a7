-- KEYS: devices. Returns every device of the user (see parse_device), in no particular order.
local all = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #all, 2 do
  fields[all[i]] = all[i + 1]
end
local devices = {}
for field, value in pairs(fields) do
  if is_record_field(field) then
    devices[#devices + 1] = parse_device(value, fields[state_field(field)])
  end
end
return devices
