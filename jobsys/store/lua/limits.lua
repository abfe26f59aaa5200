#!lua flags=allow-oom
-- limits.lua: set the rate and concurrency limits of a queue, or of one task of it
-- (flow control, docs/flow-control.md; claim.lua enforces them, see flow_rules in
-- _lib.lua), and wake the queue's idle workers so that a raised limit counts at once.
-- KEYS[1] flow HASH of the queue   KEYS[2] ready ZSET   KEYS[3] wakeup ZSET
-- ARGV[1] the field suffix: '' for the queue's own limits, '|<task>' for a task's
-- ARGV[2] rate "<n>,<period ms>", or '' for none   ARGV[3] concurrency per key, or ''
-- Returns: 1.
local sfx = ARGV[1]
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'rate' .. sfx, ARGV[2])
else
  redis.call('HDEL', KEYS[1], 'rate' .. sfx)
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'conc' .. sfx, ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'conc' .. sfx)
end
if redis.call('ZCARD', KEYS[2]) > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
return 1
