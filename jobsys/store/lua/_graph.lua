-- _graph.lua: the helpers of dependencies, batches and workflows (docs/workflows.md),
-- part of the library's top after _lib.lua and the generated KEYSPACE table (see
-- library.py's _keyspace_lua).
--
-- A job that ends (completed, failed for good, cancelled, expired) may release or cancel
-- the jobs that wait for it (its `children`) and count in its batch, whose last job
-- queues the batch's callbacks: all in the same script that ends it, through
-- job_ended(). Those jobs may live in other queues, whose keys the script only
-- learns while it runs: they are derived from KEYSPACE (one Redis, or one Cluster
-- slot: see docs/workflows.md for the Cluster design).
--
-- Hash fields: `follow` ('1': the job has children or a batch: job_ended has work;
-- 'c' the same under Redis Cluster, whose keys differ: see docs/workflows.md),
-- `depends_on` (comma-separated ids of its parents), `waiting_on` (how many parents
-- have not ended, while `waiting`), `on_parent_failure` ('run'; absent = cancel),
-- `batch` (its batch's id), `batch_counted` (the status it was counted with in its
-- batch: only a job's first end counts), `batch_callback` (the batch whose callback
-- it is).

-- The key KEYSPACE[name] of `x` (a queue name, a job or batch id).
local function kx(name, x)
  local p = KEYSPACE[name]
  return p[1] .. x .. p[2]
end

-- True for the statuses a job never leaves (but by a retry from the dead letter).
-- `expired` (flow control: not started by its deadline) did not complete: its
-- children are cancelled unless they run anyway, and its batch counts it cancelled.
local ENDED = {completed = true, failed = true, cancelled = true, expired = true}

-- Makes a `waiting` job ready: `queued` in its queue's ready set at its rank, or
-- `scheduled` when the run_at of its submit lies ahead (and its event, in its queue's
-- stream).
local function release_waiting(job_key, id, now, R)
  local f = redis.call('HMGET', job_key, 'queue', 'rank', 'run_at')
  local q = f[1]
  redis.call('ZREM', kx('waiting', q), id)
  redis.call('HDEL', job_key, 'waiting_on')
  local due = tonumber(f[3] or '0') or 0
  if due > now then
    redis.call('HSET', job_key, 'status', 'scheduled')
    redis.call('ZADD', kx('scheduled', q), due, id)
    redis.call('ZADD', kx('scheduled_idx', q), now, id)
    emit(kx('events', q), R.events_max, 'scheduled', id)
  else
    redis.call('HSET', job_key, 'status', 'queued')
    redis.call('ZADD', kx('ready', q), f[2], id)
    redis.call('ZADD', kx('queued', q), now, id)
    redis.call('ZADD', kx('wakeup', q), 0, 'w')
    emit(kx('events', q), R.events_max, 'queued', id)
  end
end

-- Ends a job that has not started (`waiting`, `queued` or `scheduled`) `cancelled`,
-- with `reason` as its error (nil: none), its `cancelled` event and its webhook
-- deliveries. The caller then calls job_ended.
local function cancel_unstarted(job_key, id, status, reason, now, R)
  local q = redis.call('HGET', job_key, 'queue')
  if status == 'waiting' then
    redis.call('ZREM', kx('waiting', q), id)
  elseif status == 'queued' then
    redis.call('ZREM', kx('ready', q), id)
    redis.call('ZREM', kx('scheduled', q), id)  -- a retry in backoff is `queued` too
    redis.call('ZREM', kx('queued', q), id)
  else
    redis.call('ZREM', kx('scheduled', q), id)
    redis.call('ZREM', kx('scheduled_idx', q), id)
  end
  redis.call('HSET', job_key, 'status', 'cancelled', 'cancelled_at', now)
  if reason then redis.call('HSET', job_key, 'error', reason) end
  redis.call('HDEL', job_key, 'waiting_on', 'next_attempt_at')
  expire_ended(job_key, R.completed)
  redis.call('ZADD', kx('cancelled', q), now, id)
  emit(kx('events', q), R.events_max, 'cancelled', id)
  -- its webhooks (outbox in _lib.lua reads the three keys before the last)
  outbox({kx('subs', q), kx('outbox', q), kx('outbox_due', q), ''}, job_key, id, 'cancelled', now)
end

-- The payload a batch callback runs with: {"batch": counts, "payload": the payload
-- given at submit (null: none)}.
local function callback_payload(job_key, counts)
  local given = redis.call('HGET', job_key, 'payload')
  redis.call('HSET', job_key, 'payload', '{"batch":' .. counts .. ',"payload":'
    .. (given or 'null') .. '}')
end

-- Redis Cluster: whether this script call wrote to an `ended` outbox, read (and
-- reset) by relay_due(). A table of the library, shared by its functions: only the
-- cluster path sets it, and a stale `true` (a call that failed after setting it)
-- costs one needless relay.
local GRAPH = {relay = false}

local function relay_due()
  local due = GRAPH.relay
  GRAPH.relay = false
  return due
end

-- A batch's callback `ckey`/`cb`, if it still waits, when its batch has ended:
-- queued with the batch's `counts` in its payload (`verdict` 'completed'), or
-- `cancelled` with `reason` (appended to `work`).
local function callback_ended(ckey, cb, verdict, counts, reason, now, R, work)
  if redis.call('HGET', ckey, 'status') ~= 'waiting' then return end
  if verdict == 'completed' then
    callback_payload(ckey, counts)
    release_waiting(ckey, cb, now, R)
  else
    cancel_unstarted(ckey, cb, 'waiting', reason, now, R)
    work[#work + 1] = {ckey, cb, 'cancelled'}
  end
end

-- Counts the end of a batch's job (its first end only); when it was the batch's
-- last, queues on_complete, and on_success when every job completed and the batch
-- was not cancelled (else on_success ends `cancelled`, appended to `work`). `cl`:
-- Redis Cluster, where the batch's keys and callbacks lie in its jobs' slot.
local function batch_ended(batch_id, job_key, status, now, R, work, cl)
  if status == 'expired' then status = 'cancelled' end  -- the batch's counts (see ENDED)
  if redis.call('HSETNX', job_key, 'batch_counted', status) == 0 then return end
  local bkey = kx(cl and 'xbatch' or 'batch', batch_id)
  redis.call('HINCRBY', bkey, status, 1)
  if redis.call('HINCRBY', bkey, 'pending', -1) ~= 0 then return end
  local b = redis.call('HMGET', bkey, 'total', 'completed', 'failed', 'cancelled',
    'on_complete', 'on_success', 'cancelled_at', 'far_callbacks', 'queue')
  redis.call('HSET', bkey, 'finished_at', now)
  expire_ended(bkey, R.completed)
  expire_ended(kx(cl and 'xbatch_jobs' or 'batch_jobs', batch_id), R.completed)
  local counts = cjson.encode({id = batch_id, total = tonumber(b[1]),
    completed = tonumber(b[2]), failed = tonumber(b[3]), cancelled = tonumber(b[4])})
  local succeeded = b[3] == '0' and b[4] == '0' and not b[7]
  local reason = 'batch ' .. batch_id .. ' did not succeed: ' .. b[3] .. ' failed, '
    .. b[4] .. ' cancelled' .. (b[7] and ' (batch cancelled)' or '')
  -- Redis Cluster: callbacks in another slot (a callback_queue there) get the end
  -- through the outbox, with what creates them if they do not exist yet.
  local far = b[8] and cjson.decode(b[8])
  for i, cb in ipairs({b[5] or false, b[6] or false}) do
    if cb then
      local verdict = (i == 1 or succeeded) and 'completed' or 'cancelled'
      local spec = far and far[i == 1 and 'on_complete' or 'on_success']
      if spec then
        redis.call('XADD', kx('ended', b[9]), '*', 'from', batch_id, 'status', verdict,
          'kids', cb, 'counts', counts, 'reason', reason, 'cb', cjson.encode(spec))
        GRAPH.relay = true
      else
        callback_ended(R.prefix .. cb, cb, verdict, counts, reason, now, R, work)
      end
    end
  end
end

-- Applies the end of parent `jid` (in status `st`) to its child `kkey`/`kid`, if the
-- child still waits: releases it when this was its last parent (or, when the parent
-- did not complete, cancels it, appended to `work`, unless it runs anyway).
local function parent_ended(kkey, kid, jid, st, now, R, work)
  local k = redis.call('HMGET', kkey, 'status', 'on_parent_failure', 'waiting_on')
  if k[1] == 'waiting' then
    if st == 'completed' or k[2] == 'run' then
      if tonumber(k[3] or '1') <= 1 then  -- its last parent: released now
        release_waiting(kkey, kid, now, R)
      else
        redis.call('HINCRBY', kkey, 'waiting_on', -1)
      end
    else
      cancel_unstarted(kkey, kid, 'waiting', 'dependency ' .. jid .. ' ended ' .. st, now, R)
      work[#work + 1] = {kkey, kid, 'cancelled'}  -- its batch: looked up
    end
  end
end

-- Redis Cluster: records the end of `jid` (in status `st`) for its children `far`,
-- which lie in other slots, in the outbox of its queue's slot; the relay
-- (jobsys/store/relay.py) applies it to each (graph_apply.lua).
local function outbox_end(job_key, jid, st, far)
  local q = redis.call('HGET', job_key, 'queue')
  table.sort(far)  -- the relay applies them in this order
  redis.call('XADD', kx('ended', q), '*', 'from', jid, 'status', st,
    'kids', table.concat(far, ','))
  GRAPH.relay = true
end

-- Called by every script that ends a job (complete, fail and recover when it fails
-- for good, cancel, claim when it expires one), in the same step, with the status it ended in. Releases the
-- job's children whose last parent this was (or cancels them when it did not
-- complete, unless they run anyway), and counts it in its batch; a child cancelled
-- so ends in turn (a worklist, not recursion). One HMGET for a job with neither,
-- or none when the caller read them with its own: `pre` = {follow, batch} (each
-- false when absent, as HMGET gives them).
-- Under Redis Cluster (`follow` is 'c') the children in other slots get the end
-- through the outbox instead (outbox_end).
local function job_ended(job_key, id, status, now, R, pre)
  local f = pre or redis.call('HMGET', job_key, 'follow', 'batch')
  if not f[1] then return end
  local cl = f[1] == 'c'  -- Redis Cluster: the keys of the job's slot only
  local work = {{job_key, id, status, f[2]}}
  local i = 1
  while i <= #work do
    local key, jid, st, batch_id = work[i][1], work[i][2], work[i][3], work[i][4]
    i = i + 1
    -- nil: not known yet (false, from the first HMGET: none)
    if batch_id == nil then batch_id = redis.call('HGET', key, 'batch') end
    local ckey = kx(cl and 'xchildren' or 'children', jid)
    local kids = redis.call('SMEMBERS', ckey)
    if #kids > 0 then redis.call('DEL', ckey) end
    local far = nil
    for _, kid in ipairs(kids) do
      if cl and string.byte(kid, 1) == 62 then  -- '>': a child in another slot
        far = far or {}
        far[#far + 1] = string.sub(kid, 2)
      else
        parent_ended(R.prefix .. kid, kid, jid, st, now, R, work)
      end
    end
    if far then outbox_end(key, jid, st, far) end
    if batch_id then batch_ended(batch_id, key, st, now, R, work, cl) end
  end
end
