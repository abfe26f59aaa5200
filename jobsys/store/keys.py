"""THE key schema of jobsys: every Redis key is built here and nowhere else.

Two names are part of the public contract and never change: the job hash
``job:<id>`` and the list ``dead_letter``. Every other key lives under the
``jobsys:`` prefix. Per-queue keys carry the queue name in a ``{...}`` hash tag
so that, under Redis Cluster, one queue's keys share a slot.

See docs/architecture.md for who writes each key and when.
"""

from __future__ import annotations

import uuid

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
    """SET ``jobsys:queues``: the names of every queue ever submitted to. TTL: none."""
    return "jobsys:queues"


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


def idempotency(key_digest: str) -> str:
    """HASH ``jobsys:idem:<sha256 of the Idempotency-Key>``: the first request that
    used the key, whatever its queue (a key is one per deployment): its
    ``fingerprint`` (which covers the queue), the ``ids`` it created and which of them
    were ``scheduled`` (positions, see enqueue.lua). TTL: IDEMPOTENCY_TTL_SECONDS.

    Not in the hash slot of a queue's keys: under Redis Cluster the check and the
    submit can no longer be one script (see docs/architecture.md)."""
    return f"jobsys:idem:{key_digest}"


def schedules() -> str:
    """HASH ``jobsys:schedules``: periodic schedules, name -> JSON (cron, task,
    payload, queue, source). TTL: none."""
    return "jobsys:schedules"


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
    than WORKER_LIVENESS_SECONDS. TTL: none."""
    return "jobsys:workers"


def worker(worker_id: str) -> str:
    """HASH ``jobsys:worker:<id>``: one worker's registration (host, pid, queues,
    concurrency, started_at, current_jobs, processed, failed). TTL: a few liveness
    windows, renewed by every heartbeat; deleted at a graceful stop."""
    return f"jobsys:worker:{worker_id}"


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
