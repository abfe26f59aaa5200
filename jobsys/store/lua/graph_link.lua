#!lua
-- graph_link.lua: (Redis Cluster; docs/workflows.md) make jobs of another hash slot
-- children of a job, before they are created: the step of a submit with depends_on
-- in the parent's slot. While the parent has not ended the children are added to
-- its children SET (each as '>' .. id: reached through the outbox when it ends);
-- once it has ended, nothing is written and its status is the answer.
-- KEYS[1] the parent's job HASH   KEYS[2] its children SET (keys.graph_children)
-- ARGV[1..] the children's ids
-- Returns: "linked", the parent's status when it has ended ("completed", "failed",
-- "cancelled", "expired"), or "missing" (no such job: nothing written).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if ENDED[status] then return status end
for i = 1, #ARGV do redis.call('SADD', KEYS[2], '>' .. ARGV[i]) end
redis.call('HSET', KEYS[1], 'follow', 'c')
return 'linked'
