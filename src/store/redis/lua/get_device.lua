-- KEYS: devices. ARGV: id. Returns the live device (see parse_device) or nil.
return read_device(KEYS[1], ARGV[1], server_now())
