#!lua
-- tick.lua: enqueue the job of one tick of a periodic schedule, exactly once,
-- however many schedulers (workers) try. The last tick a schedule enqueued is
-- kept in KEYS[1]; a tick at or before it is ignored. A schedule seen for the
-- first time only records the tick: its first job comes at its next tick.
-- KEYS[1] last tick STRING   KEYS[2] ready ZSET   KEYS[3] scheduled ZSET
-- KEYS[4] wakeup ZSET   KEYS[5] seq STRING   KEYS[6] queues SET   KEYS[7] new job HASH
-- KEYS[8..13] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)
-- KEYS[14] metrics HASH of the queue ("submitted|<task>" += 1; see metric_task)
-- ARGV[1] tick (ms since the epoch)   ARGV[2] queue   ARGV[3] schedule name
-- ARGV[4..12] the job, as one job of enqueue.lua: id, task, payload JSON ('' = none),
--   max_retries, priority, run_at_ms, delay_ms, timeout in seconds ('' = none),
--   traceparent ('' = none); run_at_ms and delay_ms are ignored: a tick's job is due now
-- The job's hash also gets `schedule` (the name) and `tick` (the tick's time).
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
local id, task = ARGV[4], ARGV[5]
local rank = put_job(KEYS[7], job_fields(), task, ARGV[2], now, ARGV[6], ARGV[7],
  tonumber(ARGV[8]), seq, 0, ARGV[11], ARGV[12], now)
redis.call('ZADD', KEYS[2], rank, id)
reindex(indexes(KEYS, 8), id, nil, 'queued', now)
redis.call('HSET', KEYS[7], 'schedule', ARGV[3], 'tick', tick)
redis.call('ZADD', KEYS[4], 0, 'w')
redis.call('HINCRBY', KEYS[14], 'submitted|' .. metric_task(KEYS[14], task), 1)
if seq == 1 then
  redis.call('SADD', KEYS[6], ARGV[2])  -- the queue's first job: register it
end
return 'enqueued'
