-- KEYS: session, session index. ARGV: digest, record, ttl (ms).
put_session(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]))
return 1
