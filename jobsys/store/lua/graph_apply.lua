#!lua flags=allow-oom
-- graph_apply.lua: (Redis Cluster; docs/workflows.md) the relay's step in a child's
-- hash slot: apply the end of a parent that lives in another slot to the child,
-- ONCE. The child's record of applied parents (KEYS[2]) makes a second call for the
-- same parent a no-op, so a relay that dies before acknowledging its outbox entry
-- can be repeated. A child not created yet (its submit links the parents first) gets
-- only the record, which its submit (enqueue_graph.lua) reads.
-- KEYS[1] the child's job HASH   KEYS[2] its applied HASH (keys.applied)
-- ARGV[1] the child's id   ARGV[2] the parent's id   ARGV[3] the status the parent
-- ended in   ARGV[4] '' or, when the parent is a batch and the child its callback,
-- the batch's counts (JSON)   ARGV[5] '' or the reason a callback is cancelled with;
-- then the four retention arguments (see _lib.lua), then EVENTS_MAX_LEN. A batch's
-- callback (its `batch_callback` is ARGV[2]) is queued ('completed') or cancelled
-- (see callback_ended in _graph.lua); when it does not exist yet, the relay creates
-- it (graph_callback.lua), which reads the record.
-- The child's queue keys (and those of its own children, when it is cancelled so)
-- are derived from KEYSPACE (see _graph.lua): all in its slot.
-- Returns: {"applied", q}: q is the child's queue when the application wrote to its
-- outbox (the child was cancelled and has children in other slots: relay it), else
-- ''; {"repeat", ''} (applied before: nothing written) or {"early", ''} (no child yet:
-- only the record written).
local kid, parent, status, counts, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HSETNX', KEYS[2], parent, status) == 0 then return {'repeat', ''} end
if counts ~= '' then  -- for graph_callback.lua, when the callback comes later
  redis.call('HSET', KEYS[2], parent .. '|counts', counts, parent .. '|reason', reason)
end
redis.call('EXPIRE', KEYS[2], APPLIED_TTL)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'early', ''} end
local R = retention(ARGV)
local now = now_ms()
local work = {}
if counts ~= '' and redis.call('HGET', KEYS[1], 'batch_callback') == parent then
  callback_ended(KEYS[1], kid, status, counts, reason, now, R, work)
else
  parent_ended(KEYS[1], kid, parent, status, now, R, work)
end
-- a child cancelled so ends in turn: its own children and batch
for _, w in ipairs(work) do job_ended(w[1], w[2], w[3], now, R) end
if relay_due() then return {'applied', redis.call('HGET', KEYS[1], 'queue')} end
return {'applied', ''}
