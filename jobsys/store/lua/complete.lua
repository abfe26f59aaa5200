#!lua flags=allow-oom
-- complete.lua: record the results of one or more jobs, each only if the caller
-- still holds its lease (fencing).
-- KEYS[1] leases ZSET   KEYS[2..7] the queue's status indexes (queued, scheduled,
-- processing, completed, failed, cancelled; completed is a LIST of 22-byte (ms, id)
-- elements, newest first (see pack_completed in _lib.lua), the others ZSETs)   KEYS[7+i] job HASH of the i-th job
-- then the queue's subscriptions HASH, outbox HASH and outbox:due ZSET (see outbox in _lib.lua)   then the events STREAM (last; see emit in _lib.lua: `completed` or
-- `cancelled` per job)
-- ARGV[1] worker id   ARGV[2+3(i-1)..] per job: id, attempt, result JSON; then the
-- four retention arguments (see _lib.lua); then EVENTS_MAX_LEN (last)
-- A job whose cancellation was requested ends `cancelled` (its result is kept).
-- Completed jobs are LPUSHed to the completed index, whose tail loses the entries
-- of expired jobs: at most 2 per job completed here + 8 per call, so it keeps up.
-- Every id must be a canonical (lower-case) UUID, as the completed LIST packs its
-- 16 bytes: an error, before anything is written, otherwise.
-- Returns: one entry per job: "completed", "cancelled", or "stale" when its lease
-- was lost (nothing written for that job).
-- Redis Cluster: then "relay" when an end was written to the outbox (see _graph.lua).
local worker = ARGV[1]
relay_due()  -- Redis Cluster: drop a flag an earlier call left (see _graph.lua)
for i = 1, #KEYS - 11 do
  local id = ARGV[2 + 3 * (i - 1)]
  if not is_uuid(id) then
    return redis.error_reply('ERR complete.lua: job id is not a lower-case UUID: ' .. id)
  end
end
local R = retention(ARGV)
local now = now_ms()
local finished = now
local idx = indexes(KEYS, 2)
local done = {completed = {}, cancelled = {}}
local settled = {}
local out = {}
local sub_list = nil  -- the queue's webhook subscriptions, read once (see outbox)
for i = 1, #KEYS - 11 do
  local key = KEYS[7 + i]
  local a = 2 + 3 * (i - 1)
  local id = ARGV[a]
  -- One read of what the steps below look at (the fencing fields, then
  -- settle_cancelled's, job_ended's and outbox's): none of them writes these fields.
  local f = redis.call('HMGET', key, 'status', 'worker', 'attempts', 'cancel_requested',
    'follow', 'batch', 'callback_url')
  if leased_to(f, worker, ARGV[a + 1]) then
    if f[4] and settle_cancelled(key, now, R) then
      out[i] = 'cancelled'
      redis.call('HSET', key, 'result', ARGV[a + 2])
    else
      redis.call('HSET', key, 'status', 'completed', 'completed_at', finished,
        'result', ARGV[a + 2])
      redis.call('HDEL', key, 'error', 'next_attempt_at', 'rank')
      expire_ended(key, R.completed)
      out[i] = 'completed'
    end
    job_ended(key, id, out[i], now, R, {f[5], f[6]})  -- workflows: children, batch (_graph.lua)
    settled[#settled + 1] = id
    emit(KEYS[#KEYS], ARGV[#ARGV], out[i], id, 'attempt', ARGV[a + 1])
    sub_list = sub_list or subscriptions(KEYS)
    outbox(KEYS, key, id, out[i], now, f[7], sub_list)
    local ended = done[out[i]]
    ended[#ended + 1] = id
  else
    out[i] = 'stale'
  end
end
zrem_all(KEYS[1], settled)  -- their leases
zrem_all(idx.processing, settled)
push_completed(idx.completed, done.completed, now)
zadd_all(idx.cancelled, now, done.cancelled)
prune(idx, now, R)
prune_completed(idx.completed, now, R, 2 * #done.completed + 8)
if relay_due() then out[#out + 1] = 'relay' end  -- Redis Cluster: see _graph.lua
return out
