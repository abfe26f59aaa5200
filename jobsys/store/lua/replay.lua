#!lua flags=allow-oom
-- replay.lua: put dead-lettered (`failed`) jobs of one queue back to work, as if
-- new: attempts 0, `replayed` + 1, `replayed_at`, no TTL (PERSIST), status
-- `queued` in `ready` at a fresh rank (after the jobs already waiting of its
-- priority), out of `dead_letter` and the `failed` index. Its `error` and
-- `history` stay. Its `expires_at` goes: a deadline is one to start by, and the job
-- had started (claim.lua would otherwise take attempts 0 for never started). Ids that are not `failed` jobs of this queue are skipped.
-- KEYS[1] dead_letter LIST   KEYS[2] ready ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5..10] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)   KEYS[10+i] job HASH of the i-th job   then the events STREAM
-- (last; see emit in _lib.lua: `queued` per job replayed)
-- ARGV[1] queue   ARGV[1+i] id of the i-th job   then EVENTS_MAX_LEN (last)
-- Returns: the ids replayed.
local queue = ARGV[1]
local now = now_ms()
local stamp = now
local idx = indexes(KEYS, 5)
local out = {}
for i = 1, #KEYS - 11 do
  local key, id = KEYS[10 + i], ARGV[1 + i]
  local f = redis.call('HMGET', key, 'status', 'queue', 'priority')
  if f[1] == 'failed' and f[2] == queue then
    local seq = redis.call('INCR', KEYS[4])
    local rank = string.format('%.0f', -(tonumber(f[3]) or 0) * 1099511627776 + seq)
    redis.call('HSET', key, 'status', 'queued', 'attempts', 0, 'rank', rank,
      'replayed_at', stamp)
    redis.call('HINCRBY', key, 'replayed', 1)
    redis.call('HDEL', key, 'failed_at', 'next_attempt_at', 'started_at', 'worker',
      'progress', 'progress_message', 'result', 'completed_at', 'expires_at')
    redis.call('PERSIST', key)
    redis.call('ZADD', KEYS[2], rank, id)
    -- dead_letter is newest first and retry-all goes newest first: found near the head.
    redis.call('LREM', KEYS[1], 1, id)
    out[#out + 1] = id
    emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', id, 'replayed', 1)
  end
end
zrem_all(idx.failed, out)
zadd_all(idx.queued, now, out)
if #out > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
return out
