#!lua flags=allow-oom
-- workers_live.lua: the ids of live workers; forgets the dead ones.
-- A worker is live while its last heartbeat is at most ARGV[1] ms old (Redis
-- clock); older members (a SIGKILLed worker never deregisters) are removed from
-- the ZSET here, and their HASHes expire by their TTL.
-- KEYS[1] workers ZSET (id -> last heartbeat, ms)   ARGV[1] liveness window, ms
-- Returns: the live ids, oldest heartbeat first.
local cutoff = now_ms() - tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
return redis.call('ZRANGE', KEYS[1], 0, -1)
