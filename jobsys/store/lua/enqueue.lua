#!lua
-- enqueue.lua: add one or more jobs to a queue, all or none.
-- KEYS[1] ready ZSET   KEYS[2] wakeup ZSET   KEYS[3] seq STRING   KEYS[4] queues SET
-- KEYS[4+i] job HASH of the i-th job
-- ARGV[1] queue name
-- ARGV[2+4(i-1)..] per job: id, task, payload JSON ('' = no payload), max_retries
-- Returns: the number of jobs enqueued, or the error "EXISTS <id>" (nothing written)
-- when a job hash already exists.
local queue = ARGV[1]
local n = #KEYS - 4
for i = 1, n do
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then
    return redis.error_reply('EXISTS ' .. ARGV[2 + 4 * (i - 1)])
  end
end
local created = iso(now_ms())
local last = redis.call('INCRBY', KEYS[3], n)
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local rank = last - n + i
  redis.call('HSET', KEYS[4 + i], 'id', ARGV[a], 'task', ARGV[a + 1], 'queue', queue,
    'status', 'queued', 'created_at', created, 'attempts', 0, 'max_retries', ARGV[a + 3],
    'rank', rank)
  if ARGV[a + 2] ~= '' then
    redis.call('HSET', KEYS[4 + i], 'payload', ARGV[a + 2])
  end
  redis.call('ZADD', KEYS[1], rank, ARGV[a])
end
redis.call('ZADD', KEYS[2], 0, 'w')
redis.call('SADD', KEYS[4], queue)
return n
