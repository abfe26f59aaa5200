#!lua flags=allow-oom
-- worker_beat.lua: register a worker, or renew its registration (every heartbeat).
-- Not a job state change: it only keeps GET /workers and the metrics' count of
-- live workers up to date, by the Redis clock so that every reader agrees.
-- KEYS[1] workers ZSET (id -> last heartbeat, ms)   KEYS[2] the worker's HASH
-- ARGV[1] worker id   ARGV[2] TTL of the HASH, ms   ARGV[3..] field, value, ... of
-- the HASH (last_heartbeat is set here)
-- Returns: the Redis clock, ms (the worker aligns its throughput minutes with it).
local now = now_ms()
redis.call('ZADD', KEYS[1], now, ARGV[1])
local f = {'last_heartbeat', iso(now)}
for i = 3, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(f))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return now
