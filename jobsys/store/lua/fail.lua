#!lua flags=allow-oom
-- fail.lua: record failed attempts of one or more jobs, each only if the caller
-- still holds its lease (fencing). With retries left a job goes back to `queued`:
-- into `scheduled` until now + backoff (with next_attempt_at), or straight into
-- `ready` at its original rank when the backoff is 0. With none left it becomes
-- `failed` and its id goes to `dead_letter`. Each failed attempt is appended to
-- the job's `history` (attempt, worker, started_at, ended_at, error).
-- KEYS[1] leases ZSET   KEYS[2] scheduled ZSET   KEYS[3] dead_letter LIST
-- KEYS[4] ready ZSET   KEYS[5] wakeup ZSET   KEYS[6..11] the queue's status indexes
-- (queued, scheduled, processing, completed, failed, cancelled)
-- KEYS[11+i] job HASH of the i-th job   then the queue's subscriptions HASH, outbox HASH and outbox:due ZSET (see outbox in _lib.lua)
-- then the events STREAM (last; see emit in
-- _lib.lua: `retried`, `failed` then `dead_lettered`, or `cancelled` per job)
-- ARGV[1] worker id   ARGV[2+4(i-1)..] per job: id, attempt, error text, backoff_ms
-- (-1: no retry, the job fails at once whatever retries it has left);
-- then the four retention arguments (see _lib.lua); then EVENTS_MAX_LEN (last)
-- A job whose cancellation was requested ends `cancelled` instead (no retry).
-- Returns: one entry per job: "retry", "dead", "cancelled", or "stale" when its
-- lease was lost (nothing written for that job).
-- Redis Cluster: then "relay" when an end was written to the outbox (see _graph.lua).
local worker = ARGV[1]
relay_due()  -- Redis Cluster: drop a flag an earlier call left (see _graph.lua)
local now = now_ms()
local R = retention(ARGV)
local idx = indexes(KEYS, 6)
local K = {scheduled = KEYS[2], dead = KEYS[3], ready = KEYS[4], wakeup = KEYS[5]}
local to = {retry = 'queued', dead = 'failed', cancelled = 'cancelled'}
local out = {}
for i = 1, #KEYS - 15 do
  local key = KEYS[11 + i]
  local a = 2 + 4 * (i - 1)
  local id, attempt, err, backoff = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  if not holds_lease(key, worker, attempt) then
    out[i] = 'stale'
  else
    redis.call('ZREM', KEYS[1], id)
    local f = redis.call('HMGET', key, 'max_retries', 'rank', 'started_at')
    if settle_cancelled(key, now, R) then
      redis.call('HSET', key, 'error', err)
      out[i] = 'cancelled'
    else
      record_failure(key, attempt, worker, f[3], now, err)
      local max_retries = f[1]
      if backoff < 0 then max_retries, backoff = 0, 0 end
      out[i] = retry_or_bury(key, id, attempt, max_retries, f[2], backoff, K, err, now, R)
    end
    reindex(idx, id, 'processing', to[out[i]], now)
    emit_failed(KEYS[#KEYS], ARGV[#ARGV], out[i], id, attempt)
    if out[i] ~= 'retry' then
      outbox(KEYS, key, id, to[out[i]], now)
      job_ended(key, id, to[out[i]], now, R)  -- workflows
    end
  end
end
prune(idx, now, R)
if relay_due() then out[#out + 1] = 'relay' end  -- Redis Cluster: see _graph.lua
return out
