#!lua flags=allow-oom
-- cancel_batch.lua: cancel a batch. Its jobs that have not started (`waiting`,
-- `queued`, `scheduled`) end `cancelled` at once; running ones get
-- `cancel_requested` (as cancel.lua). The batch is marked cancelled, so its
-- on_success never runs; on_complete runs once its last job ended, as always.
-- KEYS[1] the batch HASH   KEYS[2] the batch's jobs SET
-- ARGV: the four retention arguments (see _lib.lua). The jobs' hashes and their
-- queues' keys are derived from the job key prefix and KEYSPACE (see _graph.lua).
-- Returns: {"missing"}, {"finished"} (every job had ended: nothing written), or
-- {"cancelled", now, requested}: how many jobs ended now and how many were asked to.
local b = redis.call('HMGET', KEYS[1], 'queue', 'finished_at', 'cancelled_at')
if not b[1] then return {'missing'} end
if b[2] then return {'finished'} end
local R = retention(ARGV)
local now = now_ms()
if not b[3] then redis.call('HSET', KEYS[1], 'cancelled_at', now) end
local ended, requested = 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = R.prefix .. id
  local status = redis.call('HGET', key, 'status')
  if status == 'waiting' or status == 'queued' or status == 'scheduled' then
    cancel_unstarted(key, id, status, 'batch cancelled', now, R)
    job_ended(key, id, 'cancelled', now, R)
    ended = ended + 1
  elseif status == 'processing' then
    redis.call('HSET', key, 'cancel_requested', 1)
    requested = requested + 1
  end
end
return {'cancelled', ended, requested}
