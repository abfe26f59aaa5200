#!lua flags=allow-oom
-- complete.lua: record a job's result, if the caller still holds its lease.
-- KEYS[1] job HASH   KEYS[2] leases ZSET
-- ARGV[1] id   ARGV[2] worker id   ARGV[3] attempt   ARGV[4] result JSON
-- ARGV[5] retention in seconds (0 = keep the job forever)
-- Returns: 1 when recorded, 0 when the lease was lost (nothing written).
if not holds_lease(KEYS[1], ARGV[2], ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'completed', 'result', ARGV[4],
  'completed_at', iso(now_ms()))
redis.call('HDEL', KEYS[1], 'error', 'next_attempt_at')
redis.call('ZREM', KEYS[2], ARGV[1])
local retention = tonumber(ARGV[5])
if retention > 0 then
  redis.call('EXPIRE', KEYS[1], retention)
end
return 1
