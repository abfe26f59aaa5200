#!lua flags=allow-oom
-- heartbeat.lua: extend the leases a worker still holds.
-- KEYS[1] leases ZSET
-- ARGV[1] job key prefix ("job:"; job hashes are ARGV[1] .. id)   ARGV[2] worker id
-- ARGV[3] lease_ms   ARGV[4..] pairs of id, attempt
-- Returns: two arrays: the ids whose lease the worker has lost (taken over or
-- settled elsewhere), and the ids of held jobs whose cancellation was requested.
local prefix, worker = ARGV[1], ARGV[2]
local deadline = now_ms() + tonumber(ARGV[3])
local lost, cancel = {}, {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if holds_lease(prefix .. id, worker, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if redis.call('HEXISTS', prefix .. id, 'cancel_requested') == 1 then
      cancel[#cancel + 1] = id
    end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
