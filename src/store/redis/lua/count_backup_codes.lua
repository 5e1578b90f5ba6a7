-- KEYS: devices, backup codes. ARGV: device id. Returns how many codes the live device has
-- (0 once it is gone).
if not read_device(KEYS[1], ARGV[1], server_now()) then
  return 0
end
return redis.call('SCARD', KEYS[2])
