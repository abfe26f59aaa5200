#!lua
-- enqueue_graph.lua: add jobs with dependencies, a batch, or a workflow to one
-- queue, all or none (docs/workflows.md). As enqueue.lua, plus: a job whose
-- parents (depends_on) have not all ended waits, `waiting`, in no ready set,
-- until the script that ends its last parent releases it; a job whose parent has
-- already failed or been cancelled ends `cancelled` here (unless it runs anyway);
-- a parent that has completed counts as done. Parents are jobs that exist, or
-- jobs earlier in this call: so no cycle can be made. A batch's callbacks wait
-- until its last job ends (see batch_ended in _graph.lua).
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[6] the queue's `queued` index ZSET   KEYS[7] `scheduled`
-- index ZSET   KEYS[8] `waiting` index ZSET   KEYS[9] `cancelled` index ZSET
-- KEYS[10] metrics HASH   KEYS[11] the batch HASH or the workflow HASH (when ARGV[3]
-- names one; else any key, unused)   KEYS[12] the batch's jobs SET (else unused)
-- KEYS[12+i] job HASH of the i-th job   then, only when ARGV[3] has "idem", the
-- idempotency HASH (fingerprint, ids, statuses), the last key
-- ARGV[1] queue name   ARGV[2] max_queues (MAX_QUEUES; 0 = no cap)
-- ARGV[3] the group: '' or JSON {"batch": id, "on_complete": i, "on_success": i,
--   "callback_queue": q} (positions of the callback jobs, 0 = none; the queue of the
--   callbacks, '' = ARGV[1]: registered in KEYS[5] without the MAX_QUEUES check, its
--   `waiting` index derived from KEYSPACE) or {"workflow": id, "steps": text}
-- ARGV[3+2i-1] the i-th job (see job_arg in _lib.lua)   ARGV[3+2i] its parents:
--   '' (none) or "<cancel|run>|<id>,<id>,..."; then the four retention arguments
-- then EVENTS_MAX_LEN (last). Parent job hashes (and their children SETs) are derived
-- from the job key prefix (the last retention argument) and KEYSPACE: they may lie in
-- other queues; so is each job's events STREAM (its event: `queued`, `scheduled`,
-- `waiting` or `cancelled`, see emit in _lib.lua).
--   Under Redis Cluster any group holds "cluster": true (the children SETs and the
--   `follow` flag of its layout; a batch's callback_queue lies in ARGV[1]'s slot and
--   is registered by the caller) and may hold "far": {parent id: "linked" or the
--   status it had ended in}: the parents in other hash slots, whose hashes this call
--   cannot read; graph_link.lua made them parents first. A "linked" parent counts as
--   ended when the relay already applied its end to the job (its `applied` HASH, in
--   its slot), else the job waits for the relay.
--   A batch's group under Redis Cluster may hold "far_callbacks": {role: {"id",
--   "queue", "arg"}}: callbacks in another slot, created by graph_callback.lua
--   (not by this call); kept in the batch HASH for the outbox entry that ends them.
--   Any group may hold "idem": {"ttl": seconds, "fingerprint": hex}: an
--   Idempotency-Key in force (as in enqueue.lua: a repeat of the same request within
--   the TTL writes nothing and answers as the first did; another request is refused)
-- Returns: {"new", status, ...}: each job's status ("queued", "scheduled",
-- "waiting", "cancelled"); for a repeated request {"replay", status, ..., id, ...}
-- (the first request's). Errors (nothing written): "UNKNOWN_PARENT <id>",
-- "TOO_MANY_QUEUES", "IDEMPOTENCY_CONFLICT".
local queue, max_queues = ARGV[1], tonumber(ARGV[2])
local group = ARGV[3] ~= '' and cjson.decode(ARGV[3]) or {}
local R = retention(ARGV)
local idem = group.idem
local idem_key = idem and KEYS[#KEYS] or nil
local n = #KEYS - 12 - (idem and 1 or 0)
if idem then
  local seen = redis.call('HMGET', idem_key, 'fingerprint', 'ids', 'statuses')
  if seen[1] then
    if seen[1] ~= idem.fingerprint or not seen[3] then
      return redis.error_reply('IDEMPOTENCY_CONFLICT')
    end
    local out = {'replay'}
    for s in string.gmatch(seen[3], '[^,]+') do out[#out + 1] = s end
    for id in string.gmatch(seen[2], '[^,]+') do out[#out + 1] = id end
    return out
  end
end
local cl, far = group.cluster, group.far or {}
local jobs = {}
local here = {}
local seen = {}  -- status of each parent that existed before this call
for i = 1, n do
  local j, payload = job_arg(ARGV[2 + 2 * i])
  local spec = ARGV[3 + 2 * i]
  local parents, mode = {}, nil
  if spec ~= '' then
    local bar = string.find(spec, '|', 1, true)
    mode = string.sub(spec, 1, bar - 1)
    for p in string.gmatch(string.sub(spec, bar + 1), '[^,]+') do
      if not here[p] and not seen[p] then
        seen[p] = far[p] or redis.call('HGET', R.prefix .. p, 'status')
        if not seen[p] then return redis.error_reply('UNKNOWN_PARENT ' .. p) end
      end
      parents[#parents + 1] = p
    end
  end
  here[j[1]] = true
  jobs[i] = {j = j, payload = payload, parents = parents, mode = mode, spec = spec}
end
local last = redis.call('INCRBY', KEYS[4], n)
if last == n and redis.call('SISMEMBER', KEYS[5], queue) == 0 then
  if max_queues > 0 and redis.call('SCARD', KEYS[5]) >= max_queues then
    redis.call('DEL', KEYS[4])
    return redis.error_reply('TOO_MANY_QUEUES')
  end
  redis.call('SADD', KEYS[5], queue)
end
local now = now_ms()
local batch = group.batch
local callbacks = {}
local cbq = (group.callback_queue or '') ~= '' and group.callback_queue or queue
if batch then
  if cbq ~= queue and not cl then redis.call('SADD', KEYS[5], cbq) end
  local cbs = 0
  for _, role in ipairs({'on_complete', 'on_success'}) do
    local pos = group[role]
    if pos and pos > 0 then
      callbacks[pos] = true
      cbs = cbs + 1
      redis.call('HSET', KEYS[11], role, jobs[pos].j[1])
    end
  end
  redis.call('HSET', KEYS[11], 'queue', queue, 'created_at', now, 'total', n - cbs,
    'pending', n - cbs, 'completed', 0, 'failed', 0, 'cancelled', 0)
  if group.far_callbacks then  -- Redis Cluster: callbacks of another slot
    for role, spec in pairs(group.far_callbacks) do
      redis.call('HSET', KEYS[11], role, spec.id)
    end
    redis.call('HSET', KEYS[11], 'far_callbacks', cjson.encode(group.far_callbacks))
  end
elseif group.workflow then
  redis.call('HSET', KEYS[11], 'queue', queue, 'created_at', now, 'steps', group.steps)
  -- kept twice the longest retention from its creation (none when a retention is 0)
  if R.completed > 0 and R.failed > 0 then
    redis.call('EXPIRE', KEYS[11], 2 * math.max(R.completed, R.failed))
  end
end
local f = job_fields()
local submitted = {}
local out = {'new'}
local woken = false
-- Deferred to the end, in bulk: the waiting jobs' index entries, and for each parent
-- its new children and its `follow` flag. Nothing this call ends can reach them:
-- only jobs of this call end here (cancelled at submit), before their children come.
local waiting, kids = {}, {}
for i = 1, n do
  local job = jobs[i]
  local j = job.j
  local id, task, due, delay = j[1], j[2], j[5], j[6]
  local key = KEYS[12 + i]
  if delay > 0 then due = math.max(due, now + delay) end
  local q = callbacks[i] and cbq or queue
  local rank = put_job(key, f, task, q, now, job.payload, j[3], j[4], last - n + i, due,
    j[7], j[8], now)
  local expires = j[9] and deadline_of(j, now)  -- flow control: expires_at / ttl_seconds
  if expires then redis.call('HSET', key, 'expires_at', expires) end
  if (j[11] or '') ~= '' then redis.call('HSET', key, 'callback_url', j[11]) end  -- webhooks
  if batch and not callbacks[i] then
    redis.call('HSET', key, 'batch', batch, 'follow', cl and 'c' or 1)
    redis.call('SADD', KEYS[12], id)
  end
  local status = rank and 'queued' or 'scheduled'
  local unended, broken = {}, nil
  for _, p in ipairs(job.parents) do
    -- a parent of this call may have ended in it (cancelled at submit): read it again
    local ps = here[p] and redis.call('HGET', R.prefix .. p, 'status') or seen[p]
    if ps == 'linked' then ps = redis.call('HGET', kx('applied', id), p) or ps end
    if not ENDED[ps] then
      unended[#unended + 1] = p
    elseif ps ~= 'completed' and not broken then
      broken = 'dependency ' .. p .. ' ended ' .. ps
    end
  end
  local extra = {}
  if #job.parents > 0 then
    extra = {'depends_on', table.concat(job.parents, ',')}
    if job.mode == 'run' then
      extra[3] = 'on_parent_failure'; extra[4] = 'run'
      broken = nil
    end
    if broken or #unended == 0 then redis.call('HSET', key, unpack(extra)) end
  end
  if callbacks[i] then
    status = 'waiting'
    redis.call('HSET', key, 'status', status, 'batch_callback', batch)
    redis.call('ZADD', kx('waiting', cbq), now, id)
  elseif broken then
    status = 'cancelled'
    redis.call('HSET', key, 'status', status, 'cancelled_at', now, 'error', broken)
    expire_ended(key, R.completed)
    redis.call('ZADD', KEYS[9], now, id)
    outbox({kx('subs', q), kx('outbox', q), kx('outbox_due', q), ''}, key, id, status, now)
    job_ended(key, id, status, now, R)
  elseif #unended > 0 then
    status = 'waiting'
    redis.call('HSET', key, 'status', status, 'waiting_on', #unended, unpack(extra))
    waiting[#waiting + 1] = id
    for _, p in ipairs(unended) do
      if not far[p] then  -- (one in another slot: graph_link.lua linked it)
        local list = kids[p]
        if not list then list = {}; kids[p] = list end
        list[#list + 1] = id
      end
    end
  elseif rank then
    redis.call('ZADD', KEYS[1], rank, id)
    redis.call('ZADD', KEYS[6], now, id)
    woken = true
  else
    redis.call('ZADD', KEYS[2], due, id)
    redis.call('ZADD', KEYS[7], now, id)
  end
  emit(kx('events', q), R.events_max, status, id)
  out[#out + 1] = status
  submitted[task] = (submitted[task] or 0) + 1
end
zadd_all(KEYS[8], now, waiting)
for p, list in pairs(kids) do
  for k = 1, #list, 1000 do
    redis.call('SADD', kx(cl and 'xchildren' or 'children', p),
      unpack(list, k, math.min(k + 999, #list)))
  end
  redis.call('HSET', R.prefix .. p, 'follow', cl and 'c' or 1)
end
if woken then redis.call('ZADD', KEYS[3], 0, 'w') end
if idem then
  local ids = {}
  for i = 1, n do ids[i] = jobs[i].j[1] end
  redis.call('HSET', idem_key, 'fingerprint', idem.fingerprint, 'ids', table.concat(ids, ','),
    'statuses', table.concat(out, ',', 2))
  redis.call('EXPIRE', idem_key, idem.ttl)
end
for task, count in pairs(submitted) do count_submitted(KEYS[10], task, count) end
return out
