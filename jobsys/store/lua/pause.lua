#!lua flags=allow-oom
-- pause.lua: pause or resume a queue. While a queue is paused claim.lua starts none
-- of its jobs (submits are still accepted; running jobs finish). Resuming sets the
-- wakeup marker when jobs wait, so that idle workers claim at once.
-- KEYS[1] flow HASH of the queue   KEYS[2] ready ZSET   KEYS[3] wakeup ZSET
-- ARGV[1] "1" to pause, "0" to resume
-- Returns: 1 when the queue is now paused, 0 when not.
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
  return 1
end
redis.call('HDEL', KEYS[1], 'paused')
if redis.call('ZCARD', KEYS[2]) > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
return 0
