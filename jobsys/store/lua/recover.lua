#!lua flags=allow-oom
-- recover.lua: take back the jobs whose lease ran out (their worker died or hung).
-- Each such job's attempt counts as failed: with retries left it returns to `ready`
-- at its original rank at once; with none left it becomes `failed` and goes to
-- `dead_letter`. The old worker can no longer settle it (fencing: it is no longer
-- `processing` under that worker and attempt).
-- KEYS[1] leases ZSET   KEYS[2] ready ZSET   KEYS[3] dead_letter LIST   KEYS[4] wakeup ZSET
-- KEYS[5..10] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- The lost attempt is appended to the job's `history`.
-- ARGV[1] job key prefix ("job:"; job hashes are ARGV[1] .. id)   ARGV[2] max jobs;
-- then the four retention arguments (see _lib.lua)
-- A job whose cancellation was requested ends `cancelled` instead.
-- Returns: a flat array, 3 entries per job: id, "retry", "dead" or "cancelled", task.
local prefix = ARGV[1]
local now = now_ms()
local R = retention(ARGV)
local idx = indexes(KEYS, 5)
-- A lost attempt is retried at once (no backoff), so no scheduled key is needed.
local K = {ready = KEYS[2], dead = KEYS[3], wakeup = KEYS[4]}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'status', 'worker', 'attempts', 'max_retries', 'rank',
    'started_at', 'task')
  if f[1] == 'processing' then
    local err = 'lease expired: worker ' .. f[2] .. ' stopped renewing it during attempt '
      .. f[3]
    if settle_cancelled(key, now, R) then
      out[#out + 1] = id
      out[#out + 1] = 'cancelled'
      out[#out + 1] = f[7]
      reindex(idx, id, 'processing', 'cancelled', now)
      job_ended(key, id, 'cancelled', now, R)  -- workflows: children, batch (_graph.lua)
    else
      record_failure(key, f[3], f[2], f[6], now, err)
      local verdict = retry_or_bury(key, id, f[3], f[4], f[5], 0, K, err, now, R)
      out[#out + 1] = id
      out[#out + 1] = verdict
      out[#out + 1] = f[7]
      reindex(idx, id, 'processing', verdict == 'dead' and 'failed' or 'queued', now)
      if verdict == 'dead' then job_ended(key, id, 'failed', now, R) end  -- workflows
    end
  end
end
if #out > 0 then prune(idx, now, R) end
return out
