#!lua flags=allow-oom
-- cancel.lua: cancel a job. A `queued`, `scheduled` or `waiting` job leaves its queue and
-- becomes `cancelled` at once: it never runs. A `processing` job gets
-- `cancel_requested`; its worker learns of it at its next heartbeat (the handler
-- can check), stops it where it can, and settles it as `cancelled` (see
-- complete.lua, fail.lua, recover.lua).
-- KEYS[1] job HASH   KEYS[2] ready ZSET   KEYS[3] scheduled ZSET of the job's queue
-- KEYS[4..9] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- ARGV[1] id; then the four retention arguments (see _lib.lua)
-- Returns: "now" (cancelled now), "requested", "missing", or the status of a job
-- that has already ended ("completed", "failed", "cancelled"): nothing is written then.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'missing'
end
if status == 'queued' or status == 'scheduled' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  local now = now_ms()
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_at', now)
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  local R = retention(ARGV)
  expire_ended(KEYS[1], R.completed)
  local idx = indexes(KEYS, 4)
  reindex(idx, ARGV[1], status, 'cancelled', now)
  prune(idx, now, R)
  job_ended(KEYS[1], ARGV[1], 'cancelled', now, R)  -- workflows: children, batch (_graph.lua)
  return 'now'
end
if status == 'waiting' then  -- workflows: waits for its parents or its batch
  local R, now = retention(ARGV), now_ms()
  cancel_unstarted(KEYS[1], ARGV[1], status, nil, now, R)
  job_ended(KEYS[1], ARGV[1], 'cancelled', now, R)
  return 'now'
end
if status == 'processing' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 1)
  return 'requested'
end
return status
