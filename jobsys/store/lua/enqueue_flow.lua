#!lua
-- enqueue_flow.lua: submit jobs that carry flow-control fields (docs/flow-control.md):
-- a unique key (a single job) and/or concurrency keys. Otherwise as enqueue.lua
-- (all or none, one queue), an Idempotency-Key included (checked first, as there).
-- Unique key: unless the job holding the key of this queue still waits or runs, or
-- the key's window (unique_for_seconds from the first submit) has not passed, the
-- job is queued and then holds the key; else nothing is queued and the answer names
-- that job. The check and the submit are this one script.
-- Concurrency keys, fairness (start-time fair queuing over sequence numbers): a job
-- with key K gets the sequence number max(last[K] + 1, V + 1), where last[K] is the
-- last one K got (the fair HASH) and V the queue's virtual time: the sequence
-- number of the job at the head of `ready` (the one being served), or, with nothing
-- ready, the highest number given so far (field '' of the fair HASH), and never
-- less than the queue's sequence (KEYS[4], which jobs with a key do not advance).
-- So each key's jobs form their own stream, interleaved with the other keys' and
-- with the jobs without a key: a key with 10,000 waiting jobs holds one place per
-- round, not the first 10,000 places, and a key that was served long ago starts
-- again at the current round.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[6] the queue's `queued` index ZSET   KEYS[7] its
-- `scheduled` index ZSET   KEYS[8] the metrics HASH of the queue   KEYS[9] the fair
-- HASH (K -> last sequence number)   KEYS[10] the unique-key STRING ("<id> <end of
-- window ms, 0 = none>"), or the fair HASH again when no job has a unique key
-- KEYS[11] the idempotency HASH (see enqueue.lua), or the fair HASH again when none
-- KEYS[11+i] the i-th job's HASH   then the events STREAM (last; see emit in
-- _lib.lua: `queued` or `scheduled` per job)
-- ARGV[1] queue name   ARGV[2] max_queues (see enqueue.lua; 0 = no cap)
-- ARGV[3] job key prefix ("job:")   ARGV[4] retention in seconds of ended jobs
-- (COMPLETED_RETENTION_SECONDS; 0 = keep)   ARGV[5] the unique key as given ('' =
-- none; then only one job)   ARGV[6] its window in ms (0 = none)
-- ARGV[7] the Idempotency-Key's TTL in seconds ('' = no key)   ARGV[8] its fingerprint
-- ARGV[8+i] the i-th job, as one ARGV of enqueue.lua (job_arg in _lib.lua); its 12th
-- entry is its concurrency key ('' or absent = none)   then EVENTS_MAX_LEN (last)
-- The unique key's TTL is max(window, retention): it outlives its job's hash by no
-- more than that.
-- Returns: {"new", i, ...} (the positions of the jobs now `scheduled`),
-- {"duplicate", id, status, task} for the job that holds the unique key, or, for a
-- repeat of an idempotent request, {"replay", scheduled, id, ...} as enqueue.lua. The
-- errors "TOO_MANY_QUEUES" and "IDEMPOTENCY_CONFLICT" as enqueue.lua.
local queue, prefix, unique = ARGV[1], ARGV[3], ARGV[5]
local retention_s = tonumber(ARGV[4])
local n = #ARGV - 9
local idem = ARGV[7] ~= ''
local now = now_ms()
if idem then
  local seen = redis.call('HMGET', KEYS[11], 'fingerprint', 'ids', 'scheduled')
  if seen[1] then
    if seen[1] ~= ARGV[8] then return redis.error_reply('IDEMPOTENCY_CONFLICT') end
    local out = {'replay', seen[3] or ''}
    for id in string.gmatch(seen[2], '[^,]+') do out[#out + 1] = id end
    return out
  end
end
if unique ~= '' then
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
end
-- The queue's first jobs register it (as enqueue.lua; GET, not INCR: keyed jobs do
-- not advance the sequence).
local plain = 0
for i = 1, n do
  local j = job_arg(ARGV[8 + i])
  if not j[12] or j[12] == '' then plain = plain + 1 end
end
local base = tonumber(redis.call('GET', KEYS[4]) or '0')
if redis.call('EXISTS', KEYS[4]) == 0 and redis.call('SISMEMBER', KEYS[5], queue) == 0 then
  local max_queues = tonumber(ARGV[2])
  if max_queues > 0 and redis.call('SCARD', KEYS[5]) >= max_queues then
    return redis.error_reply('TOO_MANY_QUEUES')
  end
  redis.call('SADD', KEYS[5], queue)
end
redis.call('INCRBY', KEYS[4], plain)  -- creates the sequence of a new queue too
local V = base
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if head[1] then
  local p = tonumber(redis.call('HGET', prefix .. head[1], 'priority')) or 0
  V = math.max(V, tonumber(head[2]) + p * 1099511627776 - 1)
else
  V = math.max(V, tonumber(redis.call('HGET', KEYS[9], '') or '0'))
end
local f = job_fields()
local out = {'new'}
local last = {}
local next_plain = base
local submitted = {}
for i = 1, n do
  local j, payload = job_arg(ARGV[8 + i])
  local key = KEYS[11 + i]
  local id, task, due, delay, ck = j[1], j[2], j[5], j[6], j[12]
  if delay > 0 then due = math.max(due, now + delay) end
  local seq
  if ck and ck ~= '' then
    local prev = last[ck] or tonumber(redis.call('HGET', KEYS[9], ck) or '0')
    seq = math.max(prev + 1, V + 1)
    last[ck] = seq
  else
    next_plain = next_plain + 1
    seq = next_plain
  end
  local rank = put_job(key, f, task, queue, now, payload, j[3], j[4], seq, due, j[7], j[8], now)
  local expires = j[9] and deadline_of(j, now)
  if expires then redis.call('HSET', key, 'expires_at', expires) end
  if ck and ck ~= '' then redis.call('HSET', key, 'concurrency_key', ck) end
  if (j[11] or '') ~= '' then redis.call('HSET', key, 'callback_url', j[11]) end  -- webhooks
  if unique ~= '' then redis.call('HSET', key, 'unique_key', unique) end
  if rank then
    redis.call('ZADD', KEYS[1], rank, id)
    redis.call('ZADD', KEYS[6], now, id)
  else
    redis.call('ZADD', KEYS[2], due, id)
    redis.call('ZADD', KEYS[7], now, id)
    out[#out + 1] = i
  end
  submitted[task] = (submitted[task] or 0) + 1
  emit(KEYS[#KEYS], ARGV[#ARGV], rank and 'queued' or 'scheduled', id)
  if unique ~= '' then
    local window = tonumber(ARGV[6])
    redis.call('SET', KEYS[10], id .. ' ' .. string.format('%.0f', window > 0 and now + window or 0))
    local ttl_ms = math.max(window, retention_s * 1000)
    if retention_s > 0 then redis.call('PEXPIRE', KEYS[10], ttl_ms) end
  end
end
local top = tonumber(redis.call('HGET', KEYS[9], '') or '0')
for ck, seq in pairs(last) do
  redis.call('HSET', KEYS[9], ck, string.format('%.0f', seq))
  top = math.max(top, seq)
end
redis.call('HSET', KEYS[9], '', string.format('%.0f', top))
-- Keep the fair HASH small: a key whose last number is not above V would get V + 1
-- anyway, so a few such fields are dropped per call.
local sample = redis.call('HRANDFIELD', KEYS[9], 8, 'WITHVALUES')
for i = 1, #sample, 2 do
  if sample[i] ~= '' and tonumber(sample[i + 1]) <= V then redis.call('HDEL', KEYS[9], sample[i]) end
end
if #out < n + 1 then redis.call('ZADD', KEYS[3], 0, 'w') end
for task, count in pairs(submitted) do count_submitted(KEYS[8], task, count) end
if idem then
  local ids = {}
  for i = 1, n do ids[i] = job_arg(ARGV[8 + i])[1] end
  redis.call('HSET', KEYS[11], 'fingerprint', ARGV[8], 'ids', table.concat(ids, ','),
    'scheduled', table.concat(out, ',', 2))
  redis.call('EXPIRE', KEYS[11], tonumber(ARGV[7]))
end
return out
