#!lua
-- enqueue.lua: add one or more jobs to one queue, all or none.
-- A job is ready at once (status `queued`, in `ready` at its rank) or, when its
-- due time lies ahead, `scheduled` (in `scheduled`, score = due time) until
-- claim.lua moves it to `ready`. rank = -priority * 2^40 + sequence number, so a
-- higher priority runs first and equal priorities run in submission order.
-- KEYS[1] ready ZSET   KEYS[2] scheduled ZSET   KEYS[3] wakeup ZSET   KEYS[4] seq STRING
-- KEYS[5] queues SET   KEYS[5+i] job HASH of the i-th job
-- ARGV[1] queue name
-- ARGV[2+7(i-1)..] per job: id, task, payload JSON ('' = none), max_retries,
--   priority (-100..100), run_at_ms (due time, ms since the epoch; 0 = none),
--   delay_ms (0 = none; counted from the Redis clock)
-- Returns: the number of jobs enqueued, or the error "EXISTS <id>" (nothing written)
-- when a job hash already exists.
local queue = ARGV[1]
local n = #KEYS - 5
local W = 7
for i = 1, n do
  if redis.call('EXISTS', KEYS[5 + i]) == 1 then
    return redis.error_reply('EXISTS ' .. ARGV[2 + W * (i - 1)])
  end
end
local now = now_ms()
local created = iso(now)
local last = redis.call('INCRBY', KEYS[4], n)
local ready = 0
for i = 1, n do
  local a = 2 + W * (i - 1)
  local id, key = ARGV[a], KEYS[5 + i]
  local priority = tonumber(ARGV[a + 4])
  local rank = string.format('%.0f', -priority * 1099511627776 + (last - n + i))
  local due = tonumber(ARGV[a + 5])
  local delay = tonumber(ARGV[a + 6])
  if delay > 0 then due = now + delay end
  redis.call('HSET', key, 'id', id, 'task', ARGV[a + 1], 'queue', queue,
    'created_at', created, 'attempts', 0, 'max_retries', ARGV[a + 3], 'rank', rank)
  if ARGV[a + 2] ~= '' then redis.call('HSET', key, 'payload', ARGV[a + 2]) end
  if priority ~= 0 then redis.call('HSET', key, 'priority', priority) end
  if due > now then
    redis.call('HSET', key, 'status', 'scheduled', 'run_at', iso(due))
    redis.call('ZADD', KEYS[2], due, id)
  else
    redis.call('HSET', key, 'status', 'queued')
    redis.call('ZADD', KEYS[1], rank, id)
    ready = ready + 1
  end
end
if ready > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
redis.call('SADD', KEYS[5], queue)
return n
