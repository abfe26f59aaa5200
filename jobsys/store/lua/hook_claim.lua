#!lua flags=allow-oom
-- hook_claim.lua: lease due webhook deliveries of one queue to a dispatcher. A
-- delivery's due time becomes its lease deadline, so one whose dispatcher dies is
-- due again (and claimed by another) when the lease runs out.
-- KEYS[1] outbox HASH   KEYS[2] outbox:due ZSET
-- ARGV[1] most deliveries   ARGV[2] lease_ms
-- Returns: a flat array, 2 entries per delivery: its id and its record (JSON); the
-- record's number of attempts is the fencing token of hook_settle.lua.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(due) do
  local rec = redis.call('HGET', KEYS[1], id)
  if rec then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = rec
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
