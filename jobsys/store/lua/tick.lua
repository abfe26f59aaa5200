#!lua
-- tick.lua: enqueue the job of one tick of a periodic schedule, exactly once,
-- however many schedulers (workers) try. The last tick a schedule enqueued is
-- kept in KEYS[1]; a tick at or before it is ignored. A schedule seen for the
-- first time only records the tick: its first job comes at its next tick.
-- KEYS[1] last tick STRING   KEYS[2] ready ZSET   KEYS[3] scheduled ZSET
-- KEYS[4] wakeup ZSET   KEYS[5] seq STRING   KEYS[6] queues SET   KEYS[7] new job HASH
-- KEYS[8..13] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- KEYS[14] metrics HASH of the queue ("submitted|<task>" += 1; see count_submitted)
-- KEYS[15] the events STREAM (last; see emit in _lib.lua: `queued`)
-- ARGV[1] tick (ms since the epoch)   ARGV[2] queue   ARGV[3] schedule name
-- ARGV[4] the job, one argument as one job of enqueue.lua (see job_arg in _lib.lua);
--   its run_at_ms and delay_ms are ignored: a tick's job is due now
-- The job's hash also gets `schedule` (the name) and `tick` (the tick's time).
-- ARGV[5] EVENTS_MAX_LEN (last)
-- Returns: "enqueued", "seen" (an earlier call took this tick) or "first".
local tick = tonumber(ARGV[1])
local last = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], string.format('%.0f', math.max(tick, tonumber(last or 0))))
if not last then
  return 'first'
end
if tick <= tonumber(last) then
  return 'seen'
end
local now = now_ms()
local seq = redis.call('INCR', KEYS[5])
local j, payload = job_arg(ARGV[4])
local id, task = j[1], j[2]
local rank = put_job(KEYS[7], job_fields(), task, ARGV[2], now, payload, j[3], j[4], seq, 0,
  j[7], j[8], now)
redis.call('ZADD', KEYS[2], rank, id)
reindex(indexes(KEYS, 8), id, nil, 'queued', now)
redis.call('HSET', KEYS[7], 'schedule', ARGV[3], 'tick', tick)
redis.call('ZADD', KEYS[4], 0, 'w')
count_submitted(KEYS[14], task, 1)
emit(KEYS[#KEYS], ARGV[#ARGV], 'queued', id)
if seq == 1 then
  redis.call('SADD', KEYS[6], ARGV[2])  -- the queue's first job: register it
end
return 'enqueued'
