-- _lib.lua: the top of the function library (see scripts.py): the helpers every
-- script may call, defined once when the library is loaded, not on every call.
-- Code at this level runs at load time, where Redis offers no standard library
-- (string, math, ...): only constants here; everything else inside functions.

-- Milliseconds since the epoch by the Redis server's clock, so that lease
-- deadlines and due times never depend on the clocks of workers or API hosts.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ISO-8601 UTC with milliseconds ("2026-11-27T21:45:03.123Z") of an epoch-ms value.
local function iso(ms)
  local days = math.floor(ms / 86400000)
  local rem = ms - days * 86400000
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  local h = math.floor(rem / 3600000)
  local mi = math.floor((rem % 3600000) / 60000)
  local s = math.floor((rem % 60000) / 1000)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, h, mi, s, rem % 1000)
end

-- Fencing: true when the job whose `status`, `worker` and `attempts` fields are
-- f[1], f[2], f[3] is still running attempt `attempt` on `worker`. A worker whose
-- lease was taken over fails this check and may not settle the job.
local function leased_to(f, worker, attempt)
  return f[1] == 'processing' and f[2] == worker and f[3] == attempt
end

-- Fencing (see leased_to) of the job at `job_key`.
local function holds_lease(job_key, worker, attempt)
  return leased_to(redis.call('HMGET', job_key, 'status', 'worker', 'attempts'), worker, attempt)
end

-- Retention, passed as the four ARGV (the script's) before the last (EVENTS_MAX_LEN,
-- see emit) of every script that ends jobs:
-- completed_s (TTL of completed and cancelled jobs; 0 = keep), failed_s (TTL of
-- failed jobs; 0 = keep), dead_max (most ids in dead_letter; 0 = no cap), and the
-- job key prefix ("job:"; dead_letter holds ids, so its jobs' keys are derived).
local function retention(ARGV)
  local n = #ARGV - 1
  return {
    completed = tonumber(ARGV[n - 3]), failed = tonumber(ARGV[n - 2]),
    dead_max = tonumber(ARGV[n - 1]), prefix = ARGV[n],
    events_max = ARGV[n + 1],  -- EVENTS_MAX_LEN, the last ARGV (see emit)
  }
end

-- Sets the TTL of a job that has ended, by the retention of its end.
local function expire_ended(job_key, seconds)
  if seconds > 0 then redis.call('EXPIRE', job_key, seconds) end
end

-- Ends a job `failed` for good: `failed_at`, its id at the head of `dead_letter`,
-- and its TTL. Keeps `dead_letter` bounded: at most R.dead_max ids, and ids whose
-- job has expired are dropped from its tail (a few per call). The caller moves
-- the id to the `failed` index.
local function bury(job_key, id, dead_key, err, now, R)
  redis.call('HSET', job_key, 'status', 'failed', 'error', err, 'failed_at', now)
  redis.call('LPUSH', dead_key, id)
  expire_ended(job_key, R.failed)
  if R.dead_max > 0 then redis.call('LTRIM', dead_key, 0, R.dead_max - 1) end
  for _ = 1, 10 do
    local oldest = redis.call('LINDEX', dead_key, -1)
    if not oldest or redis.call('EXISTS', R.prefix .. oldest) == 1 then break end
    redis.call('RPOP', dead_key)
  end
end

-- The decision after a failed attempt (fail.lua and recover.lua; the caller has
-- recorded the attempt in `history`). With retries left (attempt <= max_retries)
-- the job goes back to `queued`: into K.scheduled until now + backoff_ms (with
-- `next_attempt_at`), or, when backoff_ms is 0, straight into K.ready at its
-- original `rank`, setting the K.wakeup marker. With none left it is buried into
-- K.dead. K holds the caller's KEYS: ready, scheduled (only read when backoff_ms >
-- 0), dead (dead_letter) and wakeup.
-- Returns 'retry' or 'dead' (the caller moves the id to the `queued` or `failed` index).
local function retry_or_bury(job_key, id, attempt, max_retries, rank, backoff_ms, K, err, now, R)
  if tonumber(attempt) > tonumber(max_retries) then
    bury(job_key, id, K.dead, err, now, R)
    return 'dead'
  end
  redis.call('HSET', job_key, 'status', 'queued', 'error', err)
  if backoff_ms > 0 then
    redis.call('HSET', job_key, 'next_attempt_at', now + backoff_ms)
    redis.call('ZADD', K.scheduled, now + backoff_ms, id)
  else
    redis.call('ZADD', K.ready, rank, id)
    redis.call('ZADD', K.wakeup, 0, 'w')
  end
  return 'retry'
end

-- A running job whose cancellation was requested ends `cancelled`, whatever its
-- attempt produced. Returns true when it did (the caller moves the id to the
-- `cancelled` index).
local function settle_cancelled(job_key, now, R)
  if redis.call('HEXISTS', job_key, 'cancel_requested') == 0 then
    return false
  end
  redis.call('HSET', job_key, 'status', 'cancelled', 'cancelled_at', now)
  redis.call('HDEL', job_key, 'cancel_requested', 'next_attempt_at')
  expire_ended(job_key, R.completed)
  return true
end

-- The none-values of a job array's fields 4 to 8, which the array leaves off its
-- end when the job does not set them (see job_arg).
local JOB_ARG_NONE = {nil, nil, nil, 0, 0, 0, '', ''}

-- One job's ARGV of enqueue.lua and tick.lua (made by submission.py's job_arg): a
-- JSON array [id, task, max_retries, priority, run_at_ms, delay_ms, timeout,
-- traceparent], then, when the job has a payload, a newline and the payload's JSON
-- text. The array holds no raw newline (JSON escapes one inside a string), so the
-- first newline ends it; the payload is kept verbatim, never decoded. Fields after
-- max_retries still at their none-value (0, or '') are left off the end of the
-- array (a plain job sends three): they are filled in here, up to traceparent.
-- Returns the array (a table) and the payload text ('' = none).
local function job_arg(arg)
  local nl = string.find(arg, '\n', 1, true)
  local j = cjson.decode(nl and string.sub(arg, 1, nl - 1) or arg)
  for k = #j + 1, 8 do j[k] = JOB_ARG_NONE[k] end
  return j, nl and string.sub(arg, nl + 1) or ''
end

-- A scratch table for put_job: the fields every new job has, values filled in
-- per job, so that a batch allocates one table, not one per job.
local function job_fields()
  return {'task', '', 'queue', '', 'created_at', '', 'attempts', 0, 'max_retries', '',
    'rank', '', 'status', ''}
end

-- Writes a new job's hash: status `queued`, or `scheduled` when its due time lies
-- ahead. The caller then puts the id in `ready` at the returned rank, or, when
-- none is returned, in `scheduled` at `due`; and in the matching status index.
-- `f` is a table from job_fields(). payload, timeout (seconds) and traceparent
-- (W3C trace context): '' = none; due and created: ms since the epoch (due 0 = none).
-- rank = -priority * 2^40 + seq (see enqueue.lua).
-- Returns the job's rank (text) when it is ready now, else nil.
local function put_job(job_key, f, task, queue, created, payload, max_retries, priority, seq,
                       due, timeout, traceparent, now)
  local rank = string.format('%.0f', -priority * 1099511627776 + seq)
  local later = due > now
  f[2] = task; f[4] = queue; f[6] = created; f[10] = max_retries; f[12] = rank
  f[14] = later and 'scheduled' or 'queued'
  local n = 14
  if payload ~= '' then f[n + 1] = 'payload'; f[n + 2] = payload; n = n + 2 end
  if priority ~= 0 then f[n + 1] = 'priority'; f[n + 2] = priority; n = n + 2 end
  if timeout ~= '' then f[n + 1] = 'timeout_seconds'; f[n + 2] = timeout; n = n + 2 end
  if later then f[n + 1] = 'run_at'; f[n + 2] = due; n = n + 2 end
  if traceparent ~= '' then f[n + 1] = 'traceparent'; f[n + 2] = traceparent; n = n + 2 end
  redis.call('HSET', job_key, unpack(f, 1, n))
  if later then return nil end
  return rank
end

-- The status indexes of one queue, passed as six consecutive KEYS (the script's)
-- from KEYS[first] in this order. ZSETs (score = ms when the job entered the status),
-- except `completed`: a LIST of 22-byte (ms, id) elements, newest first (see
-- pack_completed and push_completed).
local STATUSES = {'queued', 'scheduled', 'processing', 'completed', 'failed', 'cancelled'}
local function indexes(KEYS, first)
  local idx = {}
  for i, s in ipairs(STATUSES) do idx[s] = KEYS[first + i - 1] end
  return idx
end

-- ZADD every id of `ids` to `key` at `score`, or ZREM them: in slices, since
-- unpack() is limited to a few thousand values.
local function zadd_all(key, score, ids)
  for i = 1, #ids, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #ids) do
      args[#args + 1] = score
      args[#args + 1] = ids[j]
    end
    redis.call('ZADD', key, unpack(args))
  end
end

-- ZADD the flat {score, member, score, member, ...} `pairs` to `key`, in slices.
local function zadd_pairs(key, pairs)
  for i = 1, #pairs, 2000 do
    redis.call('ZADD', key, unpack(pairs, i, math.min(i + 1999, #pairs)))
  end
end

local function zrem_all(key, ids)
  for i = 1, #ids, 1000 do
    redis.call('ZREM', key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end

-- Moves one id between status indexes (`from` may be nil: a new job).
local function reindex(idx, id, from, to, now)
  if from then redis.call('ZREM', idx[from], id) end
  redis.call('ZADD', idx[to], now, id)
end

-- Drops from the cancelled and failed indexes the ids whose job hash has expired:
-- a job's TTL is set when it enters the index, so score < now - retention means
-- it is gone. (The completed LIST is pruned by complete.lua: prune_completed.)
local function prune(idx, now, R)
  if R.completed > 0 then
    local cut = '(' .. string.format('%.0f', now - R.completed * 1000)
    redis.call('ZREMRANGEBYSCORE', idx.cancelled, '-inf', cut)
  end
  if R.failed > 0 then
    local cut = '(' .. string.format('%.0f', now - R.failed * 1000)
    redis.call('ZREMRANGEBYSCORE', idx.failed, '-inf', cut)
  end
end

-- The completed LIST's elements are 22 bytes: the ms (6 bytes, big-endian), then
-- the 16 bytes of the job's UUID (its 32 hex digits). Bytewise order of elements
-- is (ms, id) order, as the id's raw bytes order like its lower-case hex text.
-- About 24 B per job in a listpack, against ~52 for the text "<ms>:<id>" that
-- this format replaced; elements of that text form (never 22 bytes long: at least
-- 38) are still read, so a list written before keeps working until pruned.
local PACKED = 22
local UUID_TEXT = '^' .. ('[0-9a-f]'):rep(8) .. '%-' .. ('[0-9a-f]'):rep(4)
  .. '%-' .. ('[0-9a-f]'):rep(4) .. '%-' .. ('[0-9a-f]'):rep(4) .. '%-'
  .. ('[0-9a-f]'):rep(12) .. '$'

-- True when `id` is a canonical (lower-case) UUID text: only those can be packed.
local function is_uuid(id)
  return string.find(id, UUID_TEXT) ~= nil
end

-- The 22-byte element of (ms, id); `id` must satisfy is_uuid.
local function pack_completed(ms, id)
  local b = {}
  for i = 6, 1, -1 do
    b[i] = ms % 256
    ms = math.floor(ms / 256)
  end
  local hex = string.gsub(id, '-', '')
  for i = 1, 32, 2 do b[#b + 1] = tonumber(string.sub(hex, i, i + 1), 16) end
  return string.char(unpack(b))
end

-- The ms of an element of the completed LIST.
local function entry_ms(e)
  if #e ~= PACKED then  -- the text form "<ms>:<id>"
    return tonumber(string.sub(e, 1, string.find(e, ':', 1, true) - 1))
  end
  local ms = 0
  for i = 1, 6 do ms = ms * 256 + string.byte(e, i) end
  return ms
end

-- The ms and the id (canonical UUID text) of an element of the completed LIST.
local function unpack_completed(e)
  if #e ~= PACKED then
    local colon = string.find(e, ':', 1, true)
    return tonumber(string.sub(e, 1, colon - 1)), string.sub(e, colon + 1)
  end
  local id = string.format('%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x',
    string.byte(e, 7, 22))
  return entry_ms(e), id
end

-- LPUSHes the element (ms, id) for every id of `ids` to the completed LIST `key`,
-- where ms = max(now, the head's ms): the list's ms never decrease from tail to
-- head, even if the Redis clock steps back, which page.lua's search relies on.
local function push_completed(key, ids, now)
  if #ids == 0 then return end
  local head = redis.call('LINDEX', key, 0)
  local stamp = head and math.max(now, entry_ms(head)) or now
  for i = 1, #ids, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #ids) do args[#args + 1] = pack_completed(stamp, ids[j]) end
    redis.call('LPUSH', key, unpack(args))
  end
end

-- Pops from the tail of the completed LIST the elements whose ms < now - retention
-- (their hashes have expired: the TTL was set when they were pushed), at most
-- `most` of them, so one call stays short and a steady flow still keeps up.
local function prune_completed(key, now, R, most)
  if R.completed <= 0 or most <= 0 then return end
  local cut = now - R.completed * 1000
  local oldest = redis.call('LINDEX', key, -1)
  if not oldest or entry_ms(oldest) >= cut then return end  -- the usual case
  while most > 0 do
    local tail = redis.call('LRANGE', key, -math.min(most, 32), -1)
    local n = 0
    for i = #tail, 1, -1 do
      if entry_ms(tail[i]) >= cut then break end
      n = n + 1
    end
    if n == 0 then return end
    redis.call('RPOP', key, n)
    if n < #tail then return end
    most = most - n
  end
end

-- Appends a failed attempt to the job's `history` (a JSON array, oldest first,
-- at most HISTORY_MAX entries; each error at most 2000 characters). Its times are
-- ISO-8601 text, as the API shows them; `started` is the hash's started_at (ms,
-- or the ISO text that jobs written by earlier versions hold).
local HISTORY_MAX = 20
local function record_failure(job_key, attempt, worker, started, now, err)
  local h = redis.call('HGET', job_key, 'history')
  local list = h and cjson.decode(h) or {}
  list[#list + 1] = {
    attempt = tonumber(attempt), worker = worker or nil,
    started_at = started and (tonumber(started) and iso(tonumber(started)) or started) or nil,
    ended_at = iso(now), error = string.sub(err, 1, 2000),
  }
  while #list > HISTORY_MAX do table.remove(list, 1) end
  redis.call('HSET', job_key, 'history', cjson.encode(list))
end

-- The per-task metrics of a queue (its metrics HASH, see keys.metrics) are bounded:
-- at most METRIC_TASKS task names get their own fields; the jobs of any other task
-- are counted under OTHER_TASK. A name has its own fields once `submitted|<name>`
-- exists (the workers check the same field); the field `tasks` counts those names.
-- Adds `count` submits of `task` to `submitted|<task>`, registering the name if
-- there is room, else to `submitted|(other)`. A known name (the usual case) costs
-- one HINCRBY: only when that HINCRBY created the field (its answer is `count`;
-- a field is never 0) is `tasks` bumped, and past METRIC_TASKS both are undone
-- (the field was made by this call, so HDEL undoes it exactly).
-- METRIC_TASKS and OTHER_TASK are defined ahead of this file by library.py, from
-- jobsys/store/metrics.py (MAX_TASKS_PER_QUEUE, OTHER_TASK).
local function count_submitted(key, task, count)
  local field = 'submitted|' .. task
  if redis.call('HINCRBY', key, field, count) ~= count then return end  -- a known name
  if redis.call('HINCRBY', key, 'tasks', 1) <= METRIC_TASKS then return end  -- registered
  redis.call('HINCRBY', key, 'tasks', -1)
  redis.call('HDEL', key, field)
  redis.call('HINCRBY', key, 'submitted|' .. OTHER_TASK, count)
end

-- -- flow control (docs/flow-control.md) -------------------------------------

-- The deadline (ms) of a job of enqueue.lua's ARGV, decoded by job_arg (`j`): its
-- 9th and 10th entries, expires_at_ms and ttl_ms (counted from `now`, the Redis
-- clock), absent or 0 = none; with both, the earlier.
-- Returns nil for a job without one.
local function deadline_of(j, now)
  local at, ttl = j[9] or 0, j[10] or 0
  if ttl > 0 then at = (at > 0) and math.min(at, now + ttl) or now + ttl end
  if at > 0 then return at end
  return nil
end

-- Ends a job that was not started by its `expires_at`: status `expired`,
-- `expired_at`, no rank, the TTL of ended jobs (`ttl_s`, 0 = keep); from the
-- `queued` index (idx) to the `expired` index ZSET `expired_key`. The caller has
-- taken it out of `ready`.
local function expire_job(job_key, id, now, idx, expired_key, ttl_s)
  redis.call('HSET', job_key, 'status', 'expired', 'expired_at', now)
  redis.call('HDEL', job_key, 'rank', 'next_attempt_at')
  expire_ended(job_key, ttl_s)
  redis.call('ZREM', idx.queued, id)
  redis.call('ZADD', expired_key, now, id)
end

-- Drops from the `expired` index the ids whose hash has expired (score < now - ttl).
local function prune_expired(expired_key, now, ttl_s)
  if ttl_s <= 0 then return end
  redis.call('ZREMRANGEBYSCORE', expired_key, '-inf',
    '(' .. string.format('%.0f', now - ttl_s * 1000))
end

-- Events (docs/events.md): appends one entry to a queue's events STREAM (see
-- keys.events): `type` (queued, scheduled, started, progress, retried, completed,
-- failed, dead_lettered, cancelled), `job` (the id), then the field/value pairs of
-- `...`. Every script that changes a job's state calls it in the same step, so an
-- event exists exactly when its change does. `maxlen` (EVENTS_MAX_LEN) bounds the
-- stream (MAXLEN ~: trimmed by whole nodes, so it may hold slightly more).
-- By convention the stream is the LAST of a script's KEYS and maxlen the LAST of
-- its ARGV (enqueue.lua: the stream is the key after the metrics HASH).
local function emit(stream, maxlen, type, id, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', type, 'job', id, ...)
end

-- The events of a failed attempt's outcome (fail.lua, recover.lua): verdict 'retry'
-- -> `retried`; 'dead' -> `failed`, then `dead_lettered`; 'cancelled' -> `cancelled`.
local function emit_failed(stream, maxlen, verdict, id, attempt)
  if verdict == 'dead' then
    emit(stream, maxlen, 'failed', id, 'attempt', attempt)
    emit(stream, maxlen, 'dead_lettered', id, 'attempt', attempt)
  else
    emit(stream, maxlen, verdict == 'retry' and 'retried' or verdict, id, 'attempt', attempt)
  end
end

-- The queue's webhook subscriptions (name, comma-separated event types, ...): the
-- HGETALL of the subscriptions HASH, by outbox's convention the fourth KEYS from the end.
local function subscriptions(KEYS)
  return redis.call('HGETALL', KEYS[#KEYS - 3])
end

-- Webhooks outbox (docs/events.md): when a job ends (`type` completed, failed or
-- cancelled) the script that ends it records one delivery per target, in the same
-- step: the job's `callback_url` (target "cb") and each subscription of the queue
-- that wants `type`. By convention the three KEYS before the events stream (the
-- last) are the queue's subscriptions HASH, outbox HASH and outbox:due ZSET. The
-- delivery ids go to the job's `webhooks` field (comma-separated). A caller that
-- ends many jobs may pass what it already read: `cb`, the job's `callback_url`
-- (false when absent), and `sub_list`, what `subscriptions(KEYS)` answered.
local function outbox(KEYS, job_key, id, type, now, cb, sub_list)
  local n = #KEYS
  local box, due = KEYS[n - 2], KEYS[n - 1]
  local targets = {}
  if cb == nil then cb = redis.call('HGET', job_key, 'callback_url') end
  if cb then targets[1] = {'cb', cb} end
  local s = sub_list or subscriptions(KEYS)
  for i = 1, #s, 2 do
    if string.find(',' .. s[i + 1] .. ',', ',' .. type .. ',', 1, true) then
      targets[#targets + 1] = {s[i], false}
    end
  end
  if #targets == 0 then return end
  local ids = {}
  local known = redis.call('HGET', job_key, 'webhooks')
  if known then ids[1] = known end
  for _, t in ipairs(targets) do
    local did = id .. '.' .. t[1] .. '.' .. string.format('%.0f', now)
    redis.call('HSET', box, did, cjson.encode({job = id, type = type, target = t[1],
      url = t[2] or nil, created = now, attempts = {}}))
    redis.call('ZADD', due, now, did)
    ids[#ids + 1] = did
  end
  redis.call('HSET', job_key, 'webhooks', table.concat(ids, ','))
end

-- The flow rules of a queue (its flow HASH, see keys.flow), read by claim.lua:
--   paused "1"; hold / hold|<task>: ms until which no job (of the task) starts
--   (RateLimited); rate / rate|<task>: "<n>,<period ms>", at most n starts per
--   period (a sliding log per limit); conc / conc|<task>: at most this many running
--   jobs per concurrency_key (of the queue / among the jobs of the task).
-- `fp` is the prefix of the queue's flow keys (keys.flow_prefix), from which the
-- rate logs (fp .. 'rate', fp .. 'rate:' .. task; ZSET of starts, score = ms) and the
-- running sets (fp .. 'run:' .. key or fp .. 'run:' .. task .. ':' .. key; ZSET of
-- "<id>:<attempt>") are derived: all in the queue's hash slot.
-- Returns a table: stop (a reason: nothing may start now), budget (most starts now),
-- pick (true when jobs must be chosen one by one: per-task rules or concurrency).
local FLOW_SCAN = 200  -- most ready jobs a claim examines when it must choose
local RUN_TTL_MS = 2 * 86400000  -- running sets outlive the longest timeout_seconds
-- A rate limit counts the starts of the period plus a guard of 10 % (250 ms to 2 s):
-- a handler starts a little after its claim, so that lag must not let a window of
-- handler starts hold more than n. Under a rate limit a claim takes one job (of
-- that task), so no job waits in a worker's batch long after it was counted.
local function rate_window(period)
  return period + math.min(math.max(math.floor(period / 10), 250), 2000)
end
local function flow_rules(flow_key, fp, now)
  local F = {fp = fp, budget = math.huge, task = {}, used = {}, slots = {}, pick = false,
    held = {}}
  local raw = redis.call('HGETALL', flow_key)
  if #raw == 0 then return F end  -- the usual case: no flow control
  for i = 1, #raw, 2 do
    local name, value = raw[i], raw[i + 1]
    local kind, task = string.match(name, '^(%a+)|(.*)$')
    if kind then
      F.task[task] = F.task[task] or {}
      F.task[task][kind] = value
      F.pick = true
    else
      F[name] = value
    end
  end
  if F.conc then F.pick = true end
  if F.paused then F.stop = 'paused'; return F end
  if F.hold then
    if tonumber(F.hold) > now then F.stop = 'hold'; return F end
    redis.call('HDEL', flow_key, 'hold')
  end
  if F.rate then
    local n, period = string.match(F.rate, '^(%d+),(%d+)$')
    local log = fp .. 'rate'
    period = rate_window(tonumber(period))
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
    F.budget = math.min(tonumber(n) - redis.call('ZCARD', log), 1)
    F.rate_log, F.rate_period = log, period
    if F.budget <= 0 then F.stop = 'rate' end
  end
  return F
end

-- How many more jobs of concurrency key `ck` may start under `limit`, its running
-- set `set` pruned first of the jobs that no longer run that attempt (ended,
-- handed back, or recovered after their worker died: the slot frees itself).
local function free_slots(set, limit, prefix)
  local members = redis.call('ZRANGE', set, 0, -1)
  local running = 0
  for _, m in ipairs(members) do
    local id, attempt = string.match(m, '^(.*):(%d+)$')
    local f = redis.call('HMGET', prefix .. id, 'status', 'attempts')
    if f[1] == 'processing' and f[2] == attempt then
      running = running + 1
    else
      redis.call('ZREM', set, m)
    end
  end
  return limit - running
end

-- Whether one job (its task and concurrency key) may start now under F; when it
-- may, counts it against the per-task rate budget and the key's free slots.
-- Records in F.why the rule that held back a job it refuses.
local function flow_admit(F, task, ck, prefix, now, flow_key)
  local T = task and F.task[task]
  if T then
    if T.hold then
      if tonumber(T.hold) > now then F.why = 'hold'; return false end
      redis.call('HDEL', flow_key, 'hold|' .. task)
      T.hold = nil
    end
    if T.rate then
      if not F.used[task] then
        local n, period = string.match(T.rate, '^(%d+),(%d+)$')
        local log = F.fp .. 'rate:' .. task
        redis.call('ZREMRANGEBYSCORE', log, '-inf', now - rate_window(tonumber(period)))
        F.used[task] = math.min(tonumber(n) - redis.call('ZCARD', log), 1)
      end
      if F.used[task] <= 0 then F.why = 'rate'; return false end
    end
  end
  local limit = (T and T.conc) or F.conc
  local set
  if ck and limit then
    set = F.fp .. 'run:' .. ((T and T.conc) and (task .. ':') or '') .. ck
    if not F.slots[set] then F.slots[set] = free_slots(set, tonumber(limit), prefix) end
    if F.slots[set] <= 0 then F.why = 'concurrency'; return false end
    F.slots[set] = F.slots[set] - 1
  end
  if T and T.rate then F.used[task] = F.used[task] - 1 end
  return true
end

-- Chooses up to `count` ready jobs that F admits, among the first FLOW_SCAN of
-- `ready` in rank order, and takes them out of it. Returns them as ZPOPMIN does
-- ({id, rank, id, rank, ...}); counts the jobs it passed over in F.held, by rule.
local function flow_pick(F, ready, count, prefix, now, flow_key)
  local scan = redis.call('ZRANGE', ready, 0, FLOW_SCAN - 1, 'WITHSCORES')
  local out = {}
  for i = 1, #scan, 2 do
    if #out >= 2 * count then break end
    local f = redis.call('HMGET', prefix .. scan[i], 'task', 'concurrency_key')
    if not f[1] or flow_admit(F, f[1], f[2] or nil, prefix, now, flow_key) then
      redis.call('ZREM', ready, scan[i])
      out[#out + 1] = scan[i]
      out[#out + 1] = scan[i + 1]
    else
      F.held[F.why] = (F.held[F.why] or 0) + 1
    end
  end
  return out
end

-- Adds F.held (jobs passed over, by rule) to the queue's metrics HASH as
-- "held|<rule>" counters (GET /metrics: jobsys_flow_held_back_total).
local function flow_count_held(F, metrics_key)
  for why, n in pairs(F.held) do redis.call('HINCRBY', metrics_key, 'held|' .. why, n) end
end

-- Records the start of a job under F: in the rate logs and its key's running set.
local function flow_started(F, id, attempt, task, ck, now)
  local member = id .. ':' .. attempt
  if F.rate_log then
    redis.call('ZADD', F.rate_log, now, member)
    redis.call('PEXPIRE', F.rate_log, F.rate_period)
  end
  local T = F.task[task]
  if T and T.rate then
    local log = F.fp .. 'rate:' .. task
    local period = rate_window(tonumber(string.match(T.rate, ',(%d+)$')))
    redis.call('ZADD', log, now, member)
    redis.call('PEXPIRE', log, period)
  end
  local limit = (T and T.conc) or F.conc
  if ck and limit then
    local set = F.fp .. 'run:' .. ((T and T.conc) and (task .. ':') or '') .. ck
    redis.call('ZADD', set, now, member)
    redis.call('PEXPIRE', set, RUN_TTL_MS)
  end
end
