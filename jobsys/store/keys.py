"""THE key schema of jobsys: every Redis key is built here and nowhere else.

Two names are part of the public contract and never change: the job hash
``job:<id>`` and the list ``dead_letter``. Every other key lives under the
``jobsys:`` prefix. Per-queue keys carry the queue name in a ``{...}`` hash tag
so that, under Redis Cluster, one queue's keys share a slot.

See docs/architecture.md for who writes each key and when.
"""

from __future__ import annotations

import uuid

# -- Redis Cluster layout (issue 13; docs/scaling.md "Redis Cluster") -------
#: True in the cluster layout (REDIS_CLUSTER_NODES): set by `use_cluster_layout`
#: when a Store is made; one layout per process.
_cluster = False
#: The hash tag of the deployment-wide keys in the cluster layout (one slot).
DEPLOYMENT_TAG = "{jobsys}"


def use_cluster_layout(on: bool) -> None:
    """Select the key layout of this process: the single-Redis names (the default)
    or the cluster layout, where the deployment-wide keys carry `DEPLOYMENT_TAG`
    and the scripts of a queue touch only keys of the queue's slot (see
    `queue_registry`, `dead_list`, `idempotency`)."""
    global _cluster
    _cluster = on


def cluster_layout() -> bool:
    """True when this process uses the cluster layout."""
    return _cluster


def _global(name: str) -> str:
    return f"{DEPLOYMENT_TAG}:{name}" if _cluster else f"jobsys:{name}"


#: Prefix of job hashes; Lua scripts that touch jobs whose ids they learn while
#: running (claim, recover) derive ``job:<id>`` from this prefix.
JOB_PREFIX = "job:"


def job(job_id: str) -> str:
    """HASH ``job:<id>``: one job's state (contract). TTL: none, or
    COMPLETED_RETENTION_SECONDS once completed. Its timestamps are ms since the
    epoch by the Redis clock (see jobsys.stamps)."""
    return f"{JOB_PREFIX}{job_id}"


def dead_letter() -> str:
    """LIST ``dead_letter``: ids of jobs that used up their retries, newest
    first (contract). TTL: none."""
    return "dead_letter"


def queues() -> str:
    """SET ``jobsys:queues`` (cluster layout: ``{jobsys}:queues``): the names of
    every queue ever submitted to. TTL: none."""
    return _global("queues")


def registered(queue: str) -> str:
    """SET ``jobsys:queue:{q}:registered`` (cluster layout only): holds q once the
    queue exists. It stands in for `queues` inside the scripts of q, which may not
    touch another slot; `queues` is written by the caller before (see
    jobsys/store/cluster.py). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:registered"


def queue_registry(queue: str) -> str:
    """The SET the scripts of `queue` register it in: `queues`, or `registered` in
    the cluster layout."""
    return registered(queue) if _cluster else queues()


def dead(queue: str) -> str:
    """LIST ``jobsys:queue:{q}:dead`` (cluster layout only): ids of q's jobs that
    fail.lua/recover.lua made `failed`, newest first, waiting to be copied into
    `dead_letter` (jobsys/store/cluster.py), which lies in another slot. Bounded as
    `dead_letter` is. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:dead"


def dead_list(queue: str) -> str:
    """The LIST the scripts of `queue` push dead ids to: `dead_letter`, or `dead`
    in the cluster layout."""
    return dead(queue) if _cluster else dead_letter()


def ready(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:ready``: ids waiting to run; score = rank
    (a per-queue sequence number, so the lowest score is the oldest job). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:ready"


def scheduled(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:scheduled``: ids waiting out a retry backoff;
    score = due time, ms since the epoch (Redis server clock). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:scheduled"


def leases(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:leases``: ids of running jobs; score = lease
    deadline, ms since the epoch (Redis server clock). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:leases"


def wakeup(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:wakeup``: at most one member; present while the
    queue may hold ready jobs. Idle workers block on it with BZPOPMIN and a
    worker that claims re-adds it while jobs remain, so one submit wakes one
    worker and a backlog wakes them all in a chain. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:wakeup"


def sequence(queue: str) -> str:
    """STRING ``jobsys:queue:{q}:seq``: the last rank handed out in the queue
    (INCR). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:seq"


def idempotency(key_digest: str, queue: str = "") -> str:
    """HASH ``jobsys:idem:<sha256 of the Idempotency-Key>``: the first request that
    used the key, whatever its queue (a key is one per deployment): its
    ``fingerprint`` (which covers the queue), the ``ids`` it created and which of them
    were ``scheduled`` (positions, see enqueue.lua). TTL: IDEMPOTENCY_TTL_SECONDS.

    Not in the hash slot of a queue's keys: under Redis Cluster the check and the
    submit can no longer be one script (see docs/architecture.md).

    Cluster layout: ``jobsys:queue:{q}:idem:<sha256>``, in the slot of the queue
    the request names (`queue`): a key is then one per queue."""
    if _cluster:
        return f"jobsys:queue:{{{queue}}}:idem:{key_digest}"
    return f"jobsys:idem:{key_digest}"


def schedules() -> str:
    """HASH ``jobsys:schedules``: periodic schedules, name -> JSON (cron, task,
    payload, queue, source; cluster layout: ``{jobsys}:schedules``). TTL: none."""
    return _global("schedules")


def last_tick(queue: str, schedule: str) -> str:
    """STRING ``jobsys:queue:{q}:tick:<schedule>``: the last tick (ms since the
    epoch) of a schedule that put a job in queue q. TTL: none (deleted with the
    schedule)."""
    return f"jobsys:queue:{{{queue}}}:tick:{schedule}"


#: The statuses that have an index, in the order the scripts take their keys
#: (see ``_lib.lua``'s ``indexes()``).
INDEXED_STATUSES = ("queued", "scheduled", "processing", "completed", "failed", "cancelled")

#: The one status whose index is a LIST rather than a ZSET (see `index`).
LIST_INDEXED_STATUS = "completed"


def index(queue: str, status: str) -> str:
    """The index of queue q's jobs in `status`: ``jobsys:queue:{q}:idx:<status>``.

    ZSET for every status but `completed`: the ids; score = when the job entered
    that status, ms since the epoch (Redis clock). Every script that changes a
    status moves the id between these in the same step.

    LIST for `completed` (`LIST_INDEXED_STATUS`): 22-byte binary elements (see
    `completed_entry`), newest first (LPUSH by complete.lua, the only way into
    `completed`; nothing leaves it but by expiring). ms never decreases from tail
    to head: complete.lua stamps max(now, the head's ms). About 24 bytes per job
    (a listpack entry) against ~146 in a ZSET and ~52 for the text ``"<ms>:<id>"``
    it replaced, and completed jobs are the bulk of a queue's jobs.

    TTL: none; the terminal ones are pruned as their hashes expire: failed and
    cancelled by score (now - retention) by the scripts that end jobs, completed
    from its tail by complete.lua.
    """
    return f"jobsys:queue:{{{queue}}}:idx:{status}"


#: Length of an element of a `completed` index: 6 bytes of ms + 16 of the UUID.
COMPLETED_ENTRY_BYTES = 22


def completed_element(ms: int, job_id: str) -> bytes:
    """The element of a `completed` index for (ms, id): the ms as 6 bytes big-endian,
    then the 16 bytes of the UUID `job_id` (as complete.lua's ``pack_completed``).

    Elements sort bytewise in (ms, id) order, the listing's order (ids are
    lower-case UUID text, whose order is that of their bytes).
    """
    return ms.to_bytes(6, "big") + uuid.UUID(job_id).bytes


def completed_entry(element: bytes) -> tuple[int, str]:
    """(ms, id) of an element of a `completed` index, read with a client that does not
    decode replies (``decode_responses=False``): the elements are binary.

    By hand, e.g. the newest element of queue default: with redis-cli, 12 hex digits
    of ms then the 32 of the id::

        redis-cli --raw LINDEX 'jobsys:queue:{default}:idx:completed' 0 | head -c 22 | xxd -p -c 22

    or decoded, with this function::

        python -c 'import redis; from jobsys.store import keys
        key = keys.index("default", "completed")
        print(keys.completed_entry(redis.Redis().lindex(key, 0)))'

    Elements of the older text form ``"<ms>:<id>"`` (never 22 bytes long) are read too.
    """
    if len(element) != COMPLETED_ENTRY_BYTES:
        ms, _, job_id = element.decode().partition(":")
        return int(ms), job_id
    return int.from_bytes(element[:6], "big"), str(uuid.UUID(bytes=element[6:]))


def workers() -> str:
    """ZSET ``jobsys:workers``: ids of registered workers; score = their last
    heartbeat, ms since the epoch (Redis server clock). Readers drop members older
    than WORKER_LIVENESS_SECONDS (cluster layout: ``{jobsys}:workers``). TTL: none."""
    return _global("workers")


def worker(worker_id: str) -> str:
    """HASH ``jobsys:worker:<id>``: one worker's registration (host, pid, queues,
    concurrency, started_at, current_jobs, processed, failed; tasks: the JSON catalog
    of the tasks it serves, see store/catalog.py). TTL: a few liveness windows, renewed
    by every heartbeat; deleted at a graceful stop. Cluster layout:
    ``{jobsys}:worker:<id>``."""
    return _global(f"worker:{worker_id}")


def metrics(queue: str) -> str:
    """HASH ``jobsys:queue:{q}:metrics``: the queue's counters for GET /metrics;
    field ``<name>|<task>`` (e.g. ``submitted|resize``) -> count, and for the
    histograms ``<name>_bucket|<i>|<task>``, ``<name>_sum|<task>``,
    ``<name>_count|<task>`` (see jobsys/store/metrics.py). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:metrics"


def throughput(queue: str, minute: int) -> str:
    """HASH ``jobsys:queue:{q}:throughput:<minute>``: jobs ``completed`` and attempts
    ``failed`` in one minute (minutes since the epoch, Redis server clock). TTL:
    THROUGHPUT_RETENTION_S (one hour)."""
    return f"jobsys:queue:{{{queue}}}:throughput:{minute}"


# -- flow control (docs/flow-control.md) ------------------------------------


def flow(queue: str) -> str:
    """HASH ``jobsys:queue:{q}:flow``: the flow control of queue q: ``paused`` ("1"
    while paused; no field otherwise). Read by claim.lua at every claim, written by
    pause.lua. TTL: none (it outlives the queue's jobs: a paused queue stays paused)."""
    return f"jobsys:queue:{{{queue}}}:flow"


def expired_index(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:idx:expired`` (`index` of status `expired`): q's jobs
    that ended `expired`; score = when (ms, Redis clock). Written by claim.lua, which
    prunes the entries older than COMPLETED_RETENTION_SECONDS (their hashes' TTL).
    Not one of `INDEXED_STATUSES` (the scripts' index keys), so that no script's KEYS
    change; listings read it as one more status index. TTL: none."""
    return index(queue, "expired")


def unique(queue: str, key_digest: str) -> str:
    """STRING ``jobsys:queue:{q}:unique:<sha256 of the unique_key>``: the job of queue q
    that holds a unique key, and the end of its window: ``"<id> <ms>"`` (ms 0: no
    window). Written by enqueue_flow.lua. TTL: max(window, COMPLETED_RETENTION_SECONDS)
    (none when retention is 0)."""
    return f"jobsys:queue:{{{queue}}}:unique:{key_digest}"


def events(queue: str) -> str:
    """STREAM ``jobsys:queue:{q}:events``: one entry per state change of a job of queue
    q (fields ``type``, ``job``, and ``attempt`` / ``progress`` where they apply),
    appended by the script that makes the change; trimmed to about EVENTS_MAX_LEN
    entries (``XADD ... MAXLEN ~``). Read by GET /events and the long-poll of
    GET /jobs/<id>?wait= (see docs/events.md). TTL: none."""
    return f"jobsys:queue:{{{queue}}}:events"


# -- workflows: dependencies, batches, workflows (issue 17; docs/workflows.md) --------

#: The status of a job that waits for its parents (``depends_on``) or, a batch's
#: callback, for its batch to end. Its index is a ZSET like the others but is not
#: one of `INDEXED_STATUSES` (whose order is the scripts' KEYS layout): the scripts of
#: ``_graph.lua`` derive it from the queue name (see `lua_keyspace`).
WAITING_STATUS = "waiting"


def children(job_id: str) -> str:
    """SET ``jobsys:children:<id>``: the ids of the jobs waiting for job <id> to end
    (their ``depends_on`` names it). Written by enqueue_graph.lua while the parent has
    not ended; deleted by the script that ends the parent, which releases or cancels
    them in the same step. TTL: none (it lives only while the parent is unended)."""
    return f"jobsys:children:{job_id}"


def batch(batch_id: str) -> str:
    """HASH ``jobsys:batch:<id>``: a batch's counts (``total``, ``pending``,
    ``completed``, ``failed``, ``cancelled``), ``queue``, ``created_at``, the ids of
    its callback jobs (``on_complete``, ``on_success``), ``cancelled_at`` when it was
    cancelled, ``finished_at`` once every job ended. TTL: none until its last job
    ends, then COMPLETED_RETENTION_SECONDS. Cluster layout: `graph_batch`."""
    return graph_batch(batch_id) if _cluster else single_batch(batch_id)


def single_batch(batch_id: str) -> str:
    """`batch` in the single-Redis layout: ``jobsys:batch:<id>``."""
    return f"jobsys:batch:{batch_id}"


def graph_batch(batch_id: str) -> str:
    """`batch` in the cluster layout: ``jobsys:{job:<id>}:batch``, in the slot of
    ``job:<id>``: the batch id is steered into its queue's slot."""
    return f"jobsys:{{job:{batch_id}}}:batch"


def batch_jobs(batch_id: str) -> str:
    """SET ``jobsys:batch:<id>:jobs``: the ids of a batch's jobs (not its callbacks),
    for cancelling the batch. TTL: as its batch hash. Cluster layout:
    `graph_batch_jobs`."""
    return graph_batch_jobs(batch_id) if _cluster else single_batch_jobs(batch_id)


def single_batch_jobs(batch_id: str) -> str:
    """`batch_jobs` in the single-Redis layout: ``jobsys:batch:<id>:jobs``."""
    return f"jobsys:batch:{batch_id}:jobs"


def graph_batch_jobs(batch_id: str) -> str:
    """`batch_jobs` in the cluster layout: ``jobsys:{job:<id>}:batch:jobs``."""
    return f"jobsys:{{job:{batch_id}}}:batch:jobs"


def workflow(workflow_id: str) -> str:
    """HASH ``jobsys:workflow:<id>``: a workflow's ``steps`` (JSON: name, id, after of
    each step, in topological order), ``queue`` and ``created_at``. TTL:
    COMPLETED_RETENTION_SECONDS after its last step ended (set lazily: see
    docs/workflows.md), else none. Cluster layout: ``jobsys:{job:<id>}:workflow``,
    the workflow id steered into its queue's slot (with its steps' jobs)."""
    if _cluster:
        return f"jobsys:{{job:{workflow_id}}}:workflow"
    return f"jobsys:workflow:{workflow_id}"


# -- workflows under Redis Cluster (issue 17; docs/workflows.md "Redis Cluster") --
# Keys named after one job (or batch) id X carry the hash tag ``{job:X}``: they lie in
# the slot of ``job:X``, i.e. (ids are steered, jobsys/store/slots.py) in the slot of
# X's queue. Used only in the cluster layout; their names do not depend on it.


def graph_children(job_id: str) -> str:
    """SET ``jobsys:{job:<id>}:children`` (cluster layout): the jobs waiting for job
    <id>, as `children` is on one Redis; a child in another hash slot is written
    ``>``<its id> and reached through the parent queue's `ended` outbox. Deleted by
    the script that ends the parent. TTL: none (it lives while the parent is unended)."""
    return f"jobsys:{{job:{job_id}}}:children"


def applied(job_id: str) -> str:
    """HASH ``jobsys:{job:<id>}:applied`` (cluster layout): parent id -> the status it
    ended in, for each parent in another slot whose end the relay applied to job
    <id> (graph_apply.lua): a second application of the same parent is a no-op. TTL:
    `APPLIED_TTL_S` from its last write."""
    return f"jobsys:{{job:{job_id}}}:applied"


#: How long a child keeps the record of the parent ends applied to it (s): far longer
#: than a relay takes to acknowledge what it applied.
APPLIED_TTL_S = 7 * 24 * 3600


def ended(queue: str) -> str:
    """STREAM ``jobsys:queue:{q}:ended`` (cluster layout): the outbox of q's slot.
    One entry (``from``: an id, ``status``, ``kids``: comma-separated ids) per end of
    a q job whose children live in other slots, written by the script that ends it;
    the relay (jobsys/store/relay.py) applies it to each child, then deletes it. TTL:
    none."""
    return f"jobsys:queue:{{{queue}}}:ended"


# -- webhooks (issue 14, docs/events.md) --


def webhooks() -> str:
    """HASH ``jobsys:webhooks``: the webhook subscriptions, id -> JSON (url, queues,
    events, secret, created_at; cluster layout: ``{jobsys}:webhooks``). TTL: none
    (DELETE /webhooks/<id>)."""
    return _global("webhooks")


def subscriptions(queue: str) -> str:
    """HASH ``jobsys:queue:{q}:subs``: the subscriptions of queue q, id -> the event
    types they want (comma-separated), read by the scripts that end jobs. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:subs"


def outbox(queue: str) -> str:
    """HASH ``jobsys:queue:{q}:outbox``: pending webhook deliveries of q's jobs,
    delivery id -> JSON (job, type, target, url, created, attempts, body), written by
    the script that ended the job; moved to the job's hash when delivered or dead.
    TTL: none."""
    return f"jobsys:queue:{{{queue}}}:outbox"


def outbox_due(queue: str) -> str:
    """ZSET ``jobsys:queue:{q}:outbox:due``: pending delivery ids; score = when the next
    attempt is due (ms, Redis clock), pushed to the lease deadline while a dispatcher
    holds it. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:outbox:due"


def outbox_dead(queue: str) -> str:
    """LIST ``jobsys:queue:{q}:outbox:dead``: ids of deliveries that never succeeded,
    newest first, at most 10,000. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:outbox:dead"


def flow_prefix(queue: str) -> str:
    """The prefix ``jobsys:queue:{q}:flow:`` of queue q's flow keys that claim.lua
    derives while it runs (it learns tasks and concurrency keys from the jobs):

    - ``<prefix>rate`` and ``<prefix>rate:<task>``: ZSET, the starts of the queue's
      (task's) rate limit in its current period, member ``<id>:<attempt>``, score =
      ms (Redis clock); trimmed at each claim. TTL: the period, renewed per start.
    - ``<prefix>run:<key>`` and ``<prefix>run:<task>:<key>``: ZSET, the running jobs
      of concurrency key ``<key>`` (``<id>:<attempt>``), pruned at each claim that
      checks the key of the jobs that no longer run that attempt. TTL: 2 days,
      renewed per start.

    All in the queue's hash slot."""
    return f"jobsys:queue:{{{queue}}}:flow:"


def fair(queue: str) -> str:
    """HASH ``jobsys:queue:{q}:fair``: for fair queuing of concurrency keys, each key ->
    the last sequence number its jobs got, and field ``""`` -> the highest given
    (see enqueue_flow.lua). Fields behind the queue's virtual time are dropped a few
    at a time. TTL: none."""
    return f"jobsys:queue:{{{queue}}}:fair"
