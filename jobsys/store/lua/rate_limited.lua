#!lua flags=allow-oom
-- rate_limited.lua: a handler raised RateLimited(retry_after): hand its jobs back
-- without counting the attempt (as release.lua: attempts - 1, back to `ready` at
-- the job's rank) and hold the job's task (or the whole queue) off until now +
-- retry_after: claim.lua starts none of its jobs before then (flow control,
-- docs/flow-control.md). Fenced: only for the worker that holds the lease.
-- KEYS[1] leases ZSET   KEYS[2] ready ZSET   KEYS[3] flow HASH of the queue
-- KEYS[4..9] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)   KEYS[9+i] job HASH of the i-th job   then the queue's
-- subscriptions HASH, outbox HASH and outbox:due ZSET (see outbox in _lib.lua), then
-- the events STREAM (last; see emit in _lib.lua: `queued` or `cancelled` per job)
-- ARGV[1] worker id   then per job, 4 entries: id, attempt, retry_after ms, and what
-- to hold: "task" or "queue"; then the four retention arguments (see _lib.lua); then
-- EVENTS_MAX_LEN (last)
-- A job whose cancellation was requested ends `cancelled` instead.
-- Returns: per job "held", "cancelled" or "stale" (lease lost: nothing written).
local worker = ARGV[1]
local now = now_ms()
local idx = indexes(KEYS, 4)
local R = retention(ARGV)
local out = {}
for i = 1, #KEYS - 13 do
  local key = KEYS[9 + i]
  local a = 2 + (i - 1) * 4
  local id, attempt, ms, what = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  if not holds_lease(key, worker, attempt) then
    out[i] = 'stale'
  elseif settle_cancelled(key, now, R) then
    redis.call('ZREM', KEYS[1], id)
    reindex(idx, id, 'processing', 'cancelled', now)
    emit(KEYS[#KEYS], ARGV[#ARGV], 'cancelled', id, 'attempt', attempt)
    outbox(KEYS, key, id, 'cancelled', now)
    job_ended(key, id, 'cancelled', now, R)  -- workflows: children, batch (_graph.lua)
    out[i] = 'cancelled'
  else
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('HSET', key, 'status', 'queued')
    redis.call('HDEL', key, 'started_at', 'worker')
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], redis.call('HGET', key, 'rank'), id)
    reindex(idx, id, 'processing', 'queued', now)
    emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', id)
    local field = what == 'queue' and 'hold' or ('hold|' .. redis.call('HGET', key, 'task'))
    local until_ms = now + ms
    local before = tonumber(redis.call('HGET', KEYS[3], field))
    if not before or before < until_ms then
      redis.call('HSET', KEYS[3], field, string.format('%.0f', until_ms))
    end
    out[i] = 'held'
  end
end
return out
