#!lua flags=allow-oom
-- purge.lua: delete dead-lettered (`failed`) jobs of one queue for good: their
-- hashes, their ids in `dead_letter` and in the `failed` index. Ids that are not
-- `failed` jobs of this queue are skipped.
-- KEYS[1] dead_letter LIST   KEYS[2] failed index ZSET of the queue
-- KEYS[2+i] job HASH of the i-th job
-- ARGV[1] queue   ARGV[1+i] id of the i-th job
-- Returns: the ids deleted.
local queue = ARGV[1]
local out = {}
for i = 1, #KEYS - 2 do
  local key, id = KEYS[2 + i], ARGV[1 + i]
  local f = redis.call('HMGET', key, 'status', 'queue')
  if f[1] == 'failed' and f[2] == queue then
    redis.call('DEL', key)
    redis.call('LREM', KEYS[1], 1, id)
    out[#out + 1] = id
  end
end
zrem_all(KEYS[2], out)
return out
