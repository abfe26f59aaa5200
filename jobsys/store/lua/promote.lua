#!lua flags=allow-oom
-- promote.lua: run now a job that waits for a due time: a `scheduled` job (delay or
-- run_at) or a retry waiting out its backoff (`queued` with next_attempt_at). It
-- leaves `scheduled` for `ready` at its rank (its place among the waiting jobs, as if
-- it had become due now), `next_attempt_at` goes, `run_at` becomes now for a
-- `scheduled` one (which becomes `queued`), and the wakeup marker is set.
-- KEYS[1] job HASH   KEYS[2] ready ZSET   KEYS[3] scheduled ZSET   KEYS[4] wakeup ZSET
-- KEYS[5..10] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- KEYS[11] the events STREAM (last; see emit in _lib.lua: `queued` for a `scheduled`
-- job, which becomes `queued`; a retry promoted out of its backoff stays `queued`, no event)
-- ARGV[1] id   ARGV[2] EVENTS_MAX_LEN (last)
-- Returns: "promoted"; "missing"; "ready" for a queued job already in `ready`; or the
-- status of a job that waits for nothing ("processing", "completed", ...). Nothing is
-- written but for "promoted".
local f = redis.call('HMGET', KEYS[1], 'status', 'rank')
local status = f[1]
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'scheduled' then return status end
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 'ready' end
local now = now_ms()
redis.call('ZADD', KEYS[2], f[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
if status == 'scheduled' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'run_at', now)
  reindex(indexes(KEYS, 5), ARGV[1], 'scheduled', 'queued', now)
  emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', ARGV[1])
end
redis.call('ZADD', KEYS[4], 0, 'w')
return 'promoted'
