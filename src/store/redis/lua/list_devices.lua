-- KEYS: devices. Returns every live device of the user (see parse_device), in no particular
-- order.
local now = server_now()
local live = {}
for _, device in pairs(all_devices(KEYS[1])) do
  if is_live(device, now) then
    live[#live + 1] = device
  end
end
return live
