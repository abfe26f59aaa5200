#!lua
-- enqueue_unique.lua: submit one job that carries a unique key (flow control,
-- docs/flow-control.md), unless a job with the same key of the same queue is still
-- waiting or running, or the key's window (unique_for_seconds from the first
-- submit) has not passed: then nothing is queued and the answer names that job.
-- The check and the submit are this one script. Otherwise as enqueue.lua for one job.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[6] the queue's `queued` index ZSET   KEYS[7] its
-- `scheduled` index ZSET   KEYS[8] the job HASH   KEYS[9] the metrics HASH of the queue
-- KEYS[10] the unique-key STRING: "<id of the job that holds it> <end of its window,
--   ms (0 = none)>"
-- ARGV[1] queue name   ARGV[2] max_queues (see enqueue.lua; 0 = no cap)
-- ARGV[3] the job, as one ARGV of enqueue.lua (job_arg in _lib.lua)
-- ARGV[4] window in ms (0 = none)   ARGV[5] job key prefix ("job:")
-- ARGV[6] retention in seconds of ended jobs (COMPLETED_RETENTION_SECONDS; 0 = keep)
-- ARGV[7] the unique key as given (stored in the job's hash as `unique_key`)
-- KEYS[11] the events STREAM (last; see emit in _lib.lua: `queued` or `scheduled`)
-- ARGV[8] EVENTS_MAX_LEN (last)
-- The unique key's TTL is max(window, retention): it outlives its job's hash by no
-- more than that, and a key whose job has ended (and whose window has passed) is
-- taken over by the next submit.
-- Returns: {"new"} or {"new", 1} (the job is `scheduled`), or {"duplicate", id,
-- status, task} for the job that holds the key. The error "TOO_MANY_QUEUES" as enqueue.lua.
local queue, prefix = ARGV[1], ARGV[5]
local now = now_ms()
local held = redis.call('GET', KEYS[10])
if held then
  local id, until_ms = string.match(held, '^(%S+) (%d+)$')
  local f = redis.call('HMGET', prefix .. id, 'status', 'task')
  local status = f[1]
  local alive = status == 'queued' or status == 'scheduled' or status == 'processing'
  if status and (alive or now < tonumber(until_ms)) then
    return {'duplicate', id, status, f[2]}
  end
end
local last = redis.call('INCRBY', KEYS[4], 1)
if last == 1 and redis.call('SISMEMBER', KEYS[5], queue) == 0 then
  local max_queues = tonumber(ARGV[2])
  if max_queues > 0 and redis.call('SCARD', KEYS[5]) >= max_queues then
    redis.call('DEL', KEYS[4])
    return redis.error_reply('TOO_MANY_QUEUES')
  end
  redis.call('SADD', KEYS[5], queue)
end
local j, payload = job_arg(ARGV[3])
local id, task, due, delay = j[1], j[2], j[5], j[6]
if delay > 0 then due = math.max(due, now + delay) end
local rank = put_job(KEYS[8], job_fields(), task, queue, now, payload, j[3], j[4], last, due,
  j[7], j[8], now)
local expires = j[9] and deadline_of(j, now)
if expires then redis.call('HSET', KEYS[8], 'expires_at', expires) end
if j[11] then redis.call('HSET', KEYS[8], 'callback_url', j[11]) end  -- webhooks
local window = tonumber(ARGV[4])
redis.call('HSET', KEYS[8], 'unique_key', ARGV[7])
local out = {'new'}
if rank then
  redis.call('ZADD', KEYS[1], rank, id)
  redis.call('ZADD', KEYS[6], now, id)
  redis.call('ZADD', KEYS[3], 0, 'w')
else
  redis.call('ZADD', KEYS[2], due, id)
  redis.call('ZADD', KEYS[7], now, id)
  out[2] = 1
end
count_submitted(KEYS[9], task, 1)
emit(KEYS[#KEYS], ARGV[#ARGV], rank and 'queued' or 'scheduled', id)
redis.call('SET', KEYS[10], id .. ' ' .. string.format('%.0f', window > 0 and now + window or 0))
local ttl_ms = math.max(window, tonumber(ARGV[6]) * 1000)
if tonumber(ARGV[6]) > 0 and ttl_ms > 0 then redis.call('PEXPIRE', KEYS[10], ttl_ms) end
return out
