#!lua flags=allow-oom
-- complete.lua: record the results of one or more jobs, each only if the caller
-- still holds its lease (fencing).
-- KEYS[1] leases ZSET   KEYS[1+i] job HASH of the i-th job
-- ARGV[1] worker id   ARGV[2] retention in seconds (0 = keep the job forever)
-- ARGV[3+3(i-1)..] per job: id, attempt, result JSON
-- Returns: one entry per job: 1 when recorded, 0 when its lease was lost (nothing
-- written for that job).
local worker = ARGV[1]
local retention = tonumber(ARGV[2])
local finished = iso(now_ms())
local out = {}
for i = 1, #KEYS - 1 do
  local key = KEYS[1 + i]
  local a = 3 + 3 * (i - 1)
  local id = ARGV[a]
  if holds_lease(key, worker, ARGV[a + 1]) then
    redis.call('HSET', key, 'status', 'completed', 'result', ARGV[a + 2],
      'completed_at', finished)
    redis.call('HDEL', key, 'error', 'next_attempt_at')
    redis.call('ZREM', KEYS[1], id)
    if retention > 0 then
      redis.call('EXPIRE', key, retention)
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
