#!lua flags=allow-oom
-- progress.lua: record how far a running job has got, if the caller still holds
-- its lease (fencing). No change of state.
-- KEYS[1] job HASH   KEYS[2] the events STREAM of its queue (last; see emit in
-- _lib.lua: `progress`)
-- ARGV[1] worker id   ARGV[2] attempt   ARGV[3] fraction done, 0.0 to 1.0
-- ARGV[4] message ('' = none)   ARGV[5] job id   ARGV[6] EVENTS_MAX_LEN (last)
-- Returns: 1 when recorded, 0 when the lease was lost (nothing written).
if not holds_lease(KEYS[1], ARGV[1], ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'progress_message', ARGV[4])
else
  redis.call('HDEL', KEYS[1], 'progress_message')
end
emit(KEYS[#KEYS], ARGV[#ARGV], 'progress', ARGV[5], 'attempt', ARGV[2],
  'progress', ARGV[3])
return 1
