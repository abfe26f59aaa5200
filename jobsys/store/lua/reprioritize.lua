#!lua flags=allow-oom
-- reprioritize.lua: change the priority of a job that has not started (`queued`, or
-- `scheduled`). Its rank becomes -priority * 2^40 + its sequence number (kept from
-- the old rank), so among the jobs of its new priority it keeps its submission
-- order. A job in `ready` moves there at once; one in `scheduled` (a delay or a
-- retry's backoff) keeps its due time and enters `ready` at the new rank when due.
-- KEYS[1] job HASH   KEYS[2] ready ZSET
-- ARGV[1] id   ARGV[2] the new priority (-100..100)
-- Returns: "changed"; "missing"; or the status of a job that does not wait
-- ("processing", "completed", ...): nothing is written then.
local f = redis.call('HMGET', KEYS[1], 'status', 'rank', 'priority')
local status = f[1]
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'scheduled' then return status end
local priority = tonumber(ARGV[2])
local seq = tonumber(f[2]) + (tonumber(f[3]) or 0) * 1099511627776
local rank = string.format('%.0f', -priority * 1099511627776 + seq)
redis.call('HSET', KEYS[1], 'priority', priority, 'rank', rank)
redis.call('ZADD', KEYS[2], 'XX', rank, ARGV[1])
return 'changed'
