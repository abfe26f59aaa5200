#!lua flags=allow-oom
-- hook_settle.lua: record one attempt of a webhook delivery, if no other dispatcher
-- recorded one since this one claimed it (fencing: the record's attempt count).
-- Outcome "ok": delivered. "retry": due again at ARGV[5]. "dead": given up; its id
-- goes to the head of the dead LIST (at most 10,000). A delivered or dead record
-- leaves the outbox for the job's hash (field `webhook:<delivery id>`), if the job
-- still exists, so the job shows its delivery history as long as it is kept.
-- KEYS[1] outbox HASH   KEYS[2] outbox:due ZSET   KEYS[3] outbox:dead LIST
-- ARGV[1] delivery id   ARGV[2] attempts the record had when claimed   ARGV[3] outcome
-- ARGV[4] the attempt (JSON object)   ARGV[5] next attempt (ms; "retry" only)
-- ARGV[6] the body sent (kept, so that every attempt sends the same)
-- ARGV[7] job key prefix ("job:"; the job's hash is ARGV[7] .. its id)
-- Returns: "ok", "retry", "dead", or "stale" (nothing written).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'stale' end
local rec = cjson.decode(raw)
if type(rec.attempts) ~= 'table' or next(rec.attempts) == nil then rec.attempts = {} end
if #rec.attempts ~= tonumber(ARGV[2]) then return 'stale' end
rec.attempts[#rec.attempts + 1] = cjson.decode(ARGV[4])
if not rec.body then rec.body = ARGV[6] end
local outcome = ARGV[3]
if outcome == 'retry' then
  rec.status = 'pending'
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[1])
  return 'retry'
end
rec.status = outcome == 'ok' and 'delivered' or 'dead'
rec.body = nil
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if outcome == 'dead' then
  redis.call('LPUSH', KEYS[3], ARGV[1])
  redis.call('LTRIM', KEYS[3], 0, 9999)
end
local job_key = ARGV[7] .. rec.job
if redis.call('EXISTS', job_key) == 1 then
  redis.call('HSET', job_key, 'webhook:' .. ARGV[1], cjson.encode(rec))
end
return outcome
