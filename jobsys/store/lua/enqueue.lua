#!lua
-- enqueue.lua: add one or more jobs to one queue, all or none.
-- A job is ready at once (status `queued`, in `ready` at its rank) or, when its
-- due time lies ahead, `scheduled` (in `scheduled`, score = due time) until
-- claim.lua moves it to `ready`. rank = -priority * 2^40 + sequence number, so a
-- higher priority runs first and equal priorities run in submission order.
-- With an idempotency key, a repeat of the same request (same fingerprint) within
-- the key's TTL enqueues nothing and answers the first request's ids; the same
-- key with another fingerprint is refused.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[6] idempotency HASH (fingerprint, ids) or, without a
-- key, any other key (unused)   KEYS[7..12] the queue's status indexes (queued,
-- scheduled, processing, completed, failed, cancelled)   KEYS[12+i] job HASH of the i-th job
-- KEYS[#KEYS] metrics HASH of the queue ("submitted|<task>" += 1 per job; past
--   METRIC_TASKS task names, "submitted|(other)": see metric_task in _lib.lua)
-- ARGV[1] queue name   ARGV[2] "1" when KEYS[6] is an idempotency key, else "0"
-- ARGV[3] request fingerprint   ARGV[4] idempotency TTL in seconds
-- ARGV[5] most queues KEYS[5] may hold (MAX_QUEUES; 0 = no cap): a queue not in it
--   yet is refused when it holds that many
-- ARGV[6+9(i-1)..] per job: id, task, payload JSON ('' = none), max_retries,
--   priority (-100..100), run_at_ms (due time, ms since the epoch; 0 = none),
--   delay_ms (0 = none; counted from the Redis clock; with run_at, the later counts),
--   timeout in seconds ('' = none), traceparent ('' = none)
-- Job ids are UUID4s made by the caller, so no job hash exists yet (not checked).
-- Returns: {"new"}, or {"replay", id, ...} for a repeated request; the error
-- "IDEMPOTENCY_CONFLICT" for a reused key, "TOO_MANY_QUEUES" for a new queue past
-- ARGV[5] (nothing written).
local queue = ARGV[1]
local idem = ARGV[2] == '1'
local n = #KEYS - 13
local idx = indexes(KEYS, 7)
local W, A = 9, 6
if idem then
  local seen = redis.call('HMGET', KEYS[6], 'fingerprint', 'ids')
  if seen[1] then
    if seen[1] ~= ARGV[3] then
      return redis.error_reply('IDEMPOTENCY_CONFLICT')
    end
    local out = {'replay'}
    for id in string.gmatch(seen[2], '[^,]+') do out[#out + 1] = id end
    return out
  end
end
local new_queue = redis.call('SISMEMBER', KEYS[5], queue) == 0
local max_queues = tonumber(ARGV[5])
if new_queue and max_queues > 0 and redis.call('SCARD', KEYS[5]) >= max_queues then
  return redis.error_reply('TOO_MANY_QUEUES')
end
local now = now_ms()
local created = now  -- timestamps in a job hash: ms since the epoch (keys.stamp)
local last = redis.call('INCRBY', KEYS[4], n)
local f = job_fields()
local ids = idem and {} or nil
local ranked, waiting = {}, {}  -- {rank, id, ...} for `ready`; ids for the index
local dues, delayed = {}, {}  -- {due, id, ...} for `scheduled`; ids for the index
local submitted = {}
for i = 1, n do
  local a = A + W * (i - 1)
  local id, task = ARGV[a], ARGV[a + 1]
  local due = tonumber(ARGV[a + 5])
  local delay = tonumber(ARGV[a + 6])
  if delay > 0 then due = math.max(due, now + delay) end
  local rank = put_job(KEYS[12 + i], f, task, queue, created, ARGV[a + 2], ARGV[a + 3],
    tonumber(ARGV[a + 4]), last - n + i, due, ARGV[a + 7], ARGV[a + 8], now)
  if rank then
    ranked[#ranked + 1] = rank; ranked[#ranked + 1] = id
    waiting[#waiting + 1] = id
  else
    dues[#dues + 1] = due; dues[#dues + 1] = id
    delayed[#delayed + 1] = id
  end
  submitted[task] = (submitted[task] or 0) + 1
  if ids then ids[i] = id end
end
zadd_pairs(KEYS[1], ranked)
zadd_pairs(KEYS[2], dues)
zadd_all(idx.queued, now, waiting)
zadd_all(idx.scheduled, now, delayed)
if #waiting > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
for task, count in pairs(submitted) do
  redis.call('HINCRBY', KEYS[#KEYS], 'submitted|' .. metric_task(KEYS[#KEYS], task), count)
end
if new_queue then
  redis.call('SADD', KEYS[5], queue)  -- the queue's first jobs: register it
end
if idem then
  redis.call('HSET', KEYS[6], 'fingerprint', ARGV[3], 'ids', table.concat(ids, ','))
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[4]))
end
return {'new'}
