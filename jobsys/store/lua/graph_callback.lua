#!lua flags=allow-oom
-- graph_callback.lua: (Redis Cluster; docs/workflows.md) create a batch's callback
-- job in its own slot, when its callback_queue lies in another slot than the
-- batch's queue, ONCE: by the API right after the batch's own script, and by the
-- relay when the batch ended before the callback existed (the API process died in
-- between). A callback that exists is left as it is. It is created `waiting`; when
-- the batch's end was already applied to it (its `applied` record, written by
-- graph_apply.lua), it is queued (or cancelled) at once.
-- KEYS[1] the callback's job HASH   KEYS[2] its applied HASH (keys.applied)
-- KEYS[3] the queue's seq STRING   KEYS[4] the queue's registry SET
-- (keys.queue_registry)   KEYS[5] the queue's metrics HASH
-- ARGV[1] the queue   ARGV[2] the batch's id   ARGV[3] the job (see job_arg in
-- _lib.lua); then the four retention arguments, then EVENTS_MAX_LEN. Its queue's
-- `waiting` index and events STREAM are derived from KEYSPACE (see _graph.lua).
-- Returns: "created" or "exists" (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local queue, batch = ARGV[1], ARGV[2]
local R = retention(ARGV)
local now = now_ms()
local j, payload = job_arg(ARGV[3])
local id, task, due, delay = j[1], j[2], j[5], j[6]
if delay > 0 then due = math.max(due, now + delay) end
local seq = redis.call('INCR', KEYS[3])
if seq == 1 then redis.call('SADD', KEYS[4], queue) end
put_job(KEYS[1], job_fields(), task, queue, now, payload, j[3], j[4], seq, due, j[7], j[8], now)
local expires = j[9] and deadline_of(j, now)  -- flow control: expires_at / ttl_seconds
if expires then redis.call('HSET', KEYS[1], 'expires_at', expires) end
if (j[11] or '') ~= '' then redis.call('HSET', KEYS[1], 'callback_url', j[11]) end
redis.call('HSET', KEYS[1], 'status', 'waiting', 'batch_callback', batch)
redis.call('ZADD', kx('waiting', queue), now, id)
emit(kx('events', queue), R.events_max, 'waiting', id)
count_submitted(KEYS[5], task, 1)
local a = redis.call('HMGET', KEYS[2], batch, batch .. '|counts', batch .. '|reason')
if a[1] then  -- the batch ended first
  local work = {}
  callback_ended(KEYS[1], id, a[1], a[2], a[3], now, R, work)
  for _, w in ipairs(work) do job_ended(w[1], w[2], w[3], now, R) end
end
relay_due()  -- the caller relays the queue anyway
return 'created'
