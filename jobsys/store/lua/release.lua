#!lua flags=allow-oom
-- release.lua: hand a job back unfinished (a worker shutting down), if the caller
-- still holds its lease. The attempt is not counted: attempts goes back down by one
-- and the job returns to `ready` at its original rank, ahead of later jobs.
-- KEYS[1] job HASH   KEYS[2] leases ZSET   KEYS[3] ready ZSET   KEYS[4] wakeup ZSET
-- KEYS[5..10] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- KEYS[11..13] the queue's subscriptions HASH, outbox HASH and outbox:due ZSET (see outbox in _lib.lua)
-- KEYS[14] the events STREAM (last; see emit in _lib.lua: `queued` or `cancelled`)
-- ARGV[1] id   ARGV[2] worker id   ARGV[3] attempt; then the four retention
-- arguments (see _lib.lua); then EVENTS_MAX_LEN (last)
-- A job whose cancellation was requested ends `cancelled` instead.
-- Returns: 1 when handed back (or cancelled), 0 when the lease was already lost
-- (nothing written).
if not holds_lease(KEYS[1], ARGV[2], ARGV[3]) then
  return 0
end
local now = now_ms()
local idx = indexes(KEYS, 5)
local R = retention(ARGV)
if settle_cancelled(KEYS[1], now, R) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  reindex(idx, ARGV[1], 'processing', 'cancelled', now)
  emit(KEYS[#KEYS], ARGV[#ARGV], 'cancelled', ARGV[1], 'attempt', ARGV[3])
  outbox(KEYS, KEYS[1], ARGV[1], 'cancelled', now)
  job_ended(KEYS[1], ARGV[1], 'cancelled', now, R)  -- workflows: children, batch (_graph.lua)
  return 1
end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'started_at', 'worker')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'rank'), ARGV[1])
redis.call('ZADD', KEYS[4], 0, 'w')
reindex(idx, ARGV[1], 'processing', 'queued', now)
emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', ARGV[1])
return 1
