-- KEYS: devices. ARGV: id. Returns the device (see parse_device) or nil.
return read_device(KEYS[1], ARGV[1])
