#!lua
-- drop_queue.lua: forget an empty queue, so that MAX_QUEUES has room again.
-- Empty: no job waits, is scheduled or runs (ready, scheduled, leases and the
-- queued/scheduled/processing indexes are empty), and the newest entry of each
-- ended index (completed, failed, cancelled) is of a job whose hash has expired:
-- entries are pruned only when jobs of the queue end, so an idle queue keeps
-- those of expired jobs; they are older than the newest, which expired first
-- (the retention is the same for all). Bounded work: a few commands.
-- Then the queue leaves the queues SET and its keys are deleted (indexes, seq,
-- wakeup, metrics). A later submit to it creates it again (within MAX_QUEUES).
-- KEYS[1] queues SET   KEYS[2] ready ZSET   KEYS[3] scheduled ZSET   KEYS[4] leases ZSET
-- KEYS[5] wakeup ZSET   KEYS[6] seq STRING   KEYS[7] metrics HASH
-- KEYS[8..13] the queue's status indexes (queued, scheduled, processing, completed,
-- failed, cancelled)   KEYS[14] the events STREAM (deleted with the rest)
-- KEYS[15] the webhook outbox:due ZSET (a queue with deliveries still to make is not
-- empty; see outbox in _lib.lua)
-- ARGV[1] queue   ARGV[2] job key prefix ("job:")
-- Returns: "dropped", "unknown" (not a registered queue) or "not_empty".
local queue, prefix = ARGV[1], ARGV[2]
if redis.call('SISMEMBER', KEYS[1], queue) == 0 then return 'unknown' end
local idx = indexes(KEYS, 8)
for _, key in ipairs({KEYS[2], KEYS[3], KEYS[4], idx.queued, idx.scheduled, idx.processing,
    KEYS[15]}) do
  if redis.call('ZCARD', key) > 0 then return 'not_empty' end
end
-- workflows: a job waiting for its parents (its index derived: see _graph.lua)
if redis.call('ZCARD', kx('waiting', queue)) > 0 then return 'not_empty' end
local newest = redis.call('LINDEX', idx.completed, 0)
if newest then
  local _, id = unpack_completed(newest)
  if redis.call('EXISTS', prefix .. id) == 1 then return 'not_empty' end
end
for _, key in ipairs({idx.failed, idx.cancelled}) do
  local top = redis.call('ZREVRANGE', key, 0, 0)[1]
  if top and redis.call('EXISTS', prefix .. top) == 1 then return 'not_empty' end
end
redis.call('SREM', KEYS[1], queue)
redis.call('DEL', unpack(KEYS, 2, #KEYS))
return 'dropped'
