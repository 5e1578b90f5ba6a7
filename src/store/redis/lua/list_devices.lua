-- KEYS: devices. Returns every device of the user (see read_device), in no particular order.
local all = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #all, 2 do
  fields[all[i]] = all[i + 1]
end
local devices = {}
for field in pairs(fields) do
  if field ~= '#seq' and not field:find(':', 1, true) then
    local device = {}
    for i, name in ipairs({device_fields(field)}) do
      device[i] = fields[name] or false
    end
    devices[#devices + 1] = device
  end
end
return devices
