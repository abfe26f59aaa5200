#!lua flags=allow-oom
-- fail.lua: record a failed attempt, if the caller still holds the job's lease.
-- With retries left the job goes back to `queued`: into `scheduled` until
-- now + backoff (with next_attempt_at), or straight into `ready` when the backoff
-- is 0. With none left it becomes `failed` and its id goes to `dead_letter`.
-- KEYS[1] job HASH   KEYS[2] leases ZSET   KEYS[3] scheduled ZSET
-- KEYS[4] dead_letter LIST   KEYS[5] ready ZSET   KEYS[6] wakeup ZSET
-- ARGV[1] id   ARGV[2] worker id   ARGV[3] attempt   ARGV[4] error text   ARGV[5] backoff_ms
-- Returns: "retry", "dead", or "stale" when the lease was lost (nothing written).
if not holds_lease(KEYS[1], ARGV[2], ARGV[3]) then
  return 'stale'
end
local id = ARGV[1]
local now = now_ms()
redis.call('ZREM', KEYS[2], id)
local max_retries = tonumber(redis.call('HGET', KEYS[1], 'max_retries'))
if tonumber(ARGV[3]) > max_retries then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[4], 'failed_at', iso(now))
  redis.call('LPUSH', KEYS[4], id)
  return 'dead'
end
local backoff = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[4])
if backoff > 0 then
  redis.call('HSET', KEYS[1], 'next_attempt_at', iso(now + backoff))
  redis.call('ZADD', KEYS[3], now + backoff, id)
else
  redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], 'rank'), id)
  redis.call('ZADD', KEYS[6], 0, 'w')
end
return 'retry'
