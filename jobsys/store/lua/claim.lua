#!lua flags=allow-oom
-- claim.lua: lease the oldest ready jobs of a queue to a worker.
-- First moves jobs whose due time has come (retries after their backoff, and
-- `scheduled` jobs, which become `queued`) from `scheduled` to `ready` at their
-- rank, then pops jobs in rank order, marks each `processing`
-- (attempts + 1, started_at, worker) and leases it until now + lease. It pops at
-- most ARGV[4] jobs and at most half of those waiting (rounded up), so that one
-- worker's batch never starves the other idle workers of a short queue.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] leases ZSET   KEYS[4] wakeup ZSET
-- KEYS[5..10] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled): a promoted `scheduled` job moves to `queued`, a claimed one
-- to `processing`
-- KEYS[11] the queue's flow HASH (flow control, docs/flow-control.md): pause,
-- holds, rate and concurrency limits (see flow_rules in _lib.lua)
-- KEYS[12] the queue's `expired` index ZSET (flow control): a job popped that has
-- not started yet (attempts 0) and whose `expires_at` has come (now >= it, Redis
-- clock) is not claimed: it ends `expired` (see expire_job in _lib.lua), which
-- ends it for the jobs that wait for it and its batch too (job_ended, _graph.lua)
-- KEYS[13] the queue's metrics HASH (flow control: "held|<rule>" counters)
-- KEYS[14] the events STREAM (last; see emit in _lib.lua: `queued` for a scheduled job
-- that became due, `started` for each job claimed, `expired` for each job expired)
-- ARGV[1] job key prefix ("job:"; job hashes are ARGV[1] .. id, known only while running)
-- ARGV[2] worker id   ARGV[3] lease_ms   ARGV[4] max jobs   ARGV[5] max retries to promote
-- ARGV[6] TTL in seconds of an expired job (COMPLETED_RETENTION_SECONDS; 0 = keep)
-- ARGV[7] the prefix of the queue's flow keys (keys.flow_prefix): rate logs and
-- running sets of concurrency keys are derived from it (see flow_rules)
-- ARGV[8] EVENTS_MAX_LEN (last)
-- Returns: a flat array, 9 entries per job: id, attempt, task, payload JSON or false,
-- max_retries, timeout in seconds or false, created_at, run_at or false, traceparent
-- or false; then, only under Redis Cluster when an expired job's end must reach
-- children in other slots, "relay" (see _graph.lua); then one last entry, the claim
-- time (ms, Redis clock; the wait metric is measured up to it). Re-adds the wakeup marker when ready jobs remain, so that the
-- next idle worker wakes up too. A paused queue answers no job (and leaves the
-- wakeup marker unset: pause.lua sets it again at resume).
local prefix, worker = ARGV[1], ARGV[2]
local now = now_ms()
relay_due()  -- Redis Cluster: drop a flag an earlier call left (see _graph.lua)
-- flow control (docs/flow-control.md): a paused or held queue, or one whose rate
-- limit is used up, starts nothing now (and sets no wakeup marker).
local F = flow_rules(KEYS[11], ARGV[7], now)
if F.stop then
  local held = math.min(redis.call('ZCARD', KEYS[1]), tonumber(ARGV[4]))
  if held > 0 then redis.call('HINCRBY', KEYS[13], 'held|' .. F.stop, held) end
  return {now}
end
local idx = indexes(KEYS, 5)
local R  -- what job_ended needs to end an expired job (see retention in _lib.lua)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local f = redis.call('HMGET', prefix .. id, 'rank', 'status')
  if f[1] then
    redis.call('ZADD', KEYS[1], f[1], id)
    if f[2] == 'scheduled' then
      redis.call('HSET', prefix .. id, 'status', 'queued')
      reindex(idx, id, 'scheduled', 'queued', now)
      emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', id)
    end
  end
end
local out = {}
local waiting = redis.call('ZCARD', KEYS[1])
local count = math.min(tonumber(ARGV[4]), math.ceil(waiting / 2), F.budget)
local popped = {}
local claimed = {}
if count > 0 and F.pick then  -- flow control: choose the jobs the rules admit
  popped = flow_pick(F, KEYS[1], count, prefix, now, KEYS[11])
  flow_count_held(F, KEYS[13])
elseif count > 0 then
  popped = redis.call('ZPOPMIN', KEYS[1], count)
end
local started = now
local deadline = now + tonumber(ARGV[3])
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'status', 'task', 'payload', 'max_retries',
    'timeout_seconds', 'created_at', 'run_at', 'traceparent', 'expires_at', 'attempts',
    'concurrency_key')
  -- A job whose hash is gone (deleted by an operator) or no longer queued is dropped.
  -- flow control: one not started by its deadline never starts (docs/flow-control.md).
  if f[1] == 'queued' and f[9] and f[10] == '0' and now >= tonumber(f[9]) then
    expire_job(key, id, now, idx, KEYS[12], tonumber(ARGV[6]))
    prune_expired(KEYS[12], now, tonumber(ARGV[6]))
    emit(KEYS[#KEYS], ARGV[#ARGV], 'expired', id)
    R = R or {completed = tonumber(ARGV[6]), prefix = prefix, events_max = ARGV[8]}
    job_ended(key, id, 'expired', now, R)  -- workflows: children, batch (_graph.lua)
  elseif f[1] == 'queued' then
    local attempt = tonumber(f[10] or '0') + 1  -- read above: no HINCRBY needed
    redis.call('HSET', key, 'status', 'processing', 'started_at', started, 'worker', worker,
      'attempts', attempt)
    redis.call('HDEL', key, 'next_attempt_at')
    if F.rate_log or F.pick then flow_started(F, id, attempt, f[2], f[11] or nil, now) end
    claimed[#claimed + 1] = id
    emit(KEYS[#KEYS], ARGV[#ARGV], 'started', id, 'attempt', attempt)
    out[#out + 1] = id
    out[#out + 1] = attempt
    out[#out + 1] = f[2]
    out[#out + 1] = f[3]
    out[#out + 1] = tonumber(f[4])
    out[#out + 1] = f[5]
    out[#out + 1] = f[6]
    out[#out + 1] = f[7]
    out[#out + 1] = f[8]
  end
end
zadd_all(KEYS[3], deadline, claimed)  -- their leases
zrem_all(idx.queued, claimed)
zadd_all(idx.processing, now, claimed)
if relay_due() then out[#out + 1] = 'relay' end  -- Redis Cluster: see _graph.lua
out[#out + 1] = now
-- (flow control: not when the rules admitted fewer, or the rate budget is used up,
-- so that idle workers do not spin on jobs they may not start: they poll)
if waiting > count and #popped == 2 * count and F.budget > count then
  redis.call('ZADD', KEYS[4], 0, 'w')
end
return out
