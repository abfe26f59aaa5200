#!lua
-- enqueue.lua: add one or more jobs to one queue, all or none.
-- A job is ready at once (status `queued`, in `ready` at its rank) or, when its
-- due time lies ahead, `scheduled` (in `scheduled`, score = due time) until
-- claim.lua moves it to `ready`. rank = -priority * 2^40 + sequence number, so a
-- higher priority runs first and equal priorities run in submission order.
-- With an idempotency key, a repeat of the same request (same fingerprint) within
-- the key's TTL enqueues nothing and answers as the first request did; the same
-- key with another fingerprint is refused. The key is one per deployment (not per
-- queue) and the fingerprint covers the queue, so reusing a key for another queue
-- is refused too.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[6] the queue's `queued` index ZSET   KEYS[7] its
-- `scheduled` index ZSET   KEYS[7+i] job HASH of the i-th job   then the metrics HASH
-- of the queue ("submitted|<task>" += 1 per job; past METRIC_TASKS task names,
-- "submitted|(other)": see count_submitted in _lib.lua)   then the events STREAM
-- (see emit in _lib.lua: `queued` or `scheduled` per job)   then, only with an
-- idempotency key, the idempotency HASH (fingerprint, ids, scheduled), the last key
-- ARGV[1] queue name   ARGV[2] the header: "<max_queues>" without an idempotency
--   key, "<max_queues>,<ttl>,<fingerprint>" with one: max_queues is the most queues
--   KEYS[5] may hold (MAX_QUEUES; 0 = no cap): a queue not in it yet is refused
--   when it holds that many; ttl (seconds) and fingerprint (hex) of the key
-- ARGV[2+i] the i-th job, one argument (see job_arg in _lib.lua): the JSON array
--   [id, task, max_retries, then only as far as the job sets them: priority
--   (-100..100; 0), run_at_ms (due time, ms since the epoch; 0 = none), delay_ms (0 =
--   none; counted from the Redis clock; with run_at, the later counts), timeout in
--   seconds ('' = none), traceparent ('' = none), expires_at_ms, ttl_ms (flow
--   control, 0 = none), callback_url (webhooks, '' = none: stored in the hash; see
--   outbox in _lib.lua), concurrency_key (flow control: enqueue_flow.lua only)],
--   then, when the job has a payload, a newline and the payload's JSON text
-- ARGV[#ARGV] EVENTS_MAX_LEN (last)
-- Job ids are UUID4s made by the caller, so no job hash exists yet (not checked).
-- A queue is registered in KEYS[5] by the submit that creates its sequence KEYS[4]
-- (its first jobs; drop_queue.lua deletes both, tick.lua registers the same way):
-- only that submit reads KEYS[5], so the usual submit pays no command for the cap.
-- Returns: {"new", i, ...}: the positions i (1-based) of the jobs now `scheduled`
-- (due later than now, by the Redis clock); the others are `queued` (a past run_at
-- too). For a repeated request {"replay", scheduled, id, ...}: the first request's
-- positions of scheduled jobs as text ("2,5"; '' = none) and its ids. The error
-- "IDEMPOTENCY_CONFLICT" for a reused key, "TOO_MANY_QUEUES" for a new queue past
-- max_queues (nothing written).
local queue, max_queues = ARGV[1], ARGV[2]
local idem = string.find(max_queues, ',', 1, true) ~= nil  -- the usual: no key
local ttl, fingerprint
if idem then max_queues, ttl, fingerprint = string.match(max_queues, '^(%d+),(%d+),(%x+)$') end
local idem_key = idem and KEYS[#KEYS] or nil
local events_key = KEYS[idem and #KEYS - 1 or #KEYS]
local metrics_key = KEYS[idem and #KEYS - 2 or #KEYS - 1]
local n = #KEYS - (idem and 10 or 9)
if idem then
  local seen = redis.call('HMGET', idem_key, 'fingerprint', 'ids', 'scheduled')
  if seen[1] then
    if seen[1] ~= fingerprint then
      return redis.error_reply('IDEMPOTENCY_CONFLICT')
    end
    local out = {'replay', seen[3] or ''}
    for id in string.gmatch(seen[2], '[^,]+') do out[#out + 1] = id end
    return out
  end
end
local last = redis.call('INCRBY', KEYS[4], n)
if last == n and redis.call('SISMEMBER', KEYS[5], queue) == 0 then
  -- A new sequence of a queue not registered: the queue's first jobs.
  max_queues = tonumber(max_queues)
  if max_queues > 0 and redis.call('SCARD', KEYS[5]) >= max_queues then
    redis.call('DEL', KEYS[4])  -- undo the INCRBY: the sequence did not exist
    return redis.error_reply('TOO_MANY_QUEUES')
  end
  -- Registered before any job is written: should a later step fail, the queue with
  -- a sequence is still registered (only a new sequence registers).
  redis.call('SADD', KEYS[5], queue)
end
local now = now_ms()
local created = now  -- timestamps in a job hash: ms since the epoch (keys.stamp)
local f = job_fields()
local ids = idem and {} or nil
local ranked, waiting = {}, {}  -- {rank, id, ...} for `ready`; ids for the index
local dues, delayed = {}, {}  -- {due, id, ...} for `scheduled`; ids for the index
local submitted = {}
local out = {'new'}
for i = 1, n do
  local j, payload = job_arg(ARGV[2 + i])
  local id, task, due, delay = j[1], j[2], j[5], j[6]
  if delay > 0 then due = math.max(due, now + delay) end
  local rank = put_job(KEYS[7 + i], f, task, queue, created, payload, j[3], j[4],
    last - n + i, due, j[7], j[8], now)
  -- flow control: a deadline to start by (docs/flow-control.md; claim.lua enforces it)
  local expires = j[9] and deadline_of(j, now)
  if expires then redis.call('HSET', KEYS[7 + i], 'expires_at', expires) end
  if rank then
    ranked[#ranked + 1] = rank; ranked[#ranked + 1] = id
    waiting[#waiting + 1] = id
  else
    dues[#dues + 1] = due; dues[#dues + 1] = id
    delayed[#delayed + 1] = id
    out[#out + 1] = i
  end
  if (j[11] or '') ~= '' then redis.call('HSET', KEYS[7 + i], 'callback_url', j[11]) end
  emit(events_key, ARGV[#ARGV], rank and 'queued' or 'scheduled', id)
  submitted[task] = (submitted[task] or 0) + 1
  if ids then ids[i] = id end
end
zadd_pairs(KEYS[1], ranked)
zadd_pairs(KEYS[2], dues)
zadd_all(KEYS[6], now, waiting)
zadd_all(KEYS[7], now, delayed)
if #waiting > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
for task, count in pairs(submitted) do count_submitted(metrics_key, task, count) end
if idem then
  redis.call('HSET', idem_key, 'fingerprint', fingerprint, 'ids', table.concat(ids, ','),
    'scheduled', table.concat(out, ',', 2))
  redis.call('EXPIRE', idem_key, tonumber(ttl))
end
return out
