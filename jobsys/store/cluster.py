"""Redis Cluster mode (REDIS_CLUSTER_NODES): the client, and the steps that cross slots.

In the cluster layout (see `keys.use_cluster_layout` and docs/scaling.md, "Redis
Cluster") every script of a queue touches keys of that queue's slot only: its
``{queue}``-tagged keys and the job hashes ``job:<id>``, whose ids are steered
into the same slot (`jobsys.store.slots`). Three things of the single-Redis
layout lie in other slots and are written here, around the scripts:

- the queue registry ``{jobsys}:queues``: `QueueRegistry` adds a queue before its
  first submit (remembered per process for `REGISTRY_MEMORY_S`, so that submits do
  not all go to the registry's shard);
- the contract list ``dead_letter``: the scripts push dead ids onto the queue's own
  list (`keys.dead`); `mirror_dead` moves them into ``dead_letter`` right after the
  script (fail, recover) and at every recovery pass of a worker serving the queue;
- the blocking wait of an idle worker over queues of several slots: one `Wakers`
  thread per slot blocks on that slot's wakeup keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.retry import Retry

from jobsys.errors import StoreUnavailable, TooManyQueues
from jobsys.settings import Settings
from jobsys.store import keys
from jobsys.store.slots import queue_slot

logger = logging.getLogger(__name__)

#: How long a process trusts that a queue it registered is still registered (a
#: queue dropped meanwhile is registered again by a submit after that).
REGISTRY_MEMORY_S = 10.0
#: Most dead ids one `mirror_dead` call moves.
MIRROR_BATCH = 500
#: Ids of expired jobs dropped from the tail of ``dead_letter`` per mirror, at most.
MIRROR_PRUNE = 10


def connect_cluster(settings: Settings, options: dict[str, Any]) -> redis.RedisCluster:
    """A Redis Cluster client for the seed nodes of REDIS_CLUSTER_NODES, with the
    connection `options` of `connection.connect` (REDIS_URL gives only the nodes'
    credentials and TLS).

    redis-py's own retries are off (a retried script could run twice); it still
    follows MOVED, ASK and TRYAGAIN, answers on which the script did not run.
    """
    node = redis.ConnectionPool.from_url(settings.redis_url)
    kwargs = dict(options)
    for name, value in node.connection_kwargs.items():
        if name in ("username", "password") or name.startswith("ssl_"):
            kwargs[name] = value
    if issubclass(node.connection_class, redis.SSLConnection):
        kwargs["ssl"] = True
    kwargs["retry"] = Retry(NoBackoff(), 0)
    return redis.RedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in settings.redis_cluster_nodes],  # type: ignore[no-untyped-call]
        **kwargs,
    )


class QueueRegistry:
    """Adds queues to ``{jobsys}:queues`` before their first submit, within MAX_QUEUES."""

    def __init__(self, client: redis.RedisCluster, max_queues: int) -> None:
        self._client = client
        self._max_queues = max_queues
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()

    def ensure(self, queue: str) -> None:
        """Register `queue` unless this process did so lately; raises `TooManyQueues`
        when it is new and MAX_QUEUES queues exist (then nothing is written)."""
        now = time.monotonic()
        with self._lock:
            if self._known.get(queue, 0.0) > now:
                return
        registry = keys.queues()
        if self._client.sismember(registry, queue) == 0:
            if self._max_queues > 0 and int(self._client.scard(registry)) >= self._max_queues:
                raise TooManyQueues(queue, self._max_queues)
            self._client.sadd(registry, queue)
        with self._lock:
            if len(self._known) > 4096:
                self._known.clear()
            self._known[queue] = now + REGISTRY_MEMORY_S

    def forget(self, queue: str) -> None:
        """Remove a dropped queue from the registry (drop_queue.lua emptied it)."""
        with self._lock:
            self._known.pop(queue, None)
        self._client.srem(keys.queues(), queue)


def mirror_dead(client: redis.RedisCluster, queue: str, dead_max: int) -> int:
    """Move the dead ids of `queue` (`keys.dead`) into ``dead_letter``, oldest first
    so that ``dead_letter`` stays newest first; keep it within `dead_max` (0: no
    cap) and drop ids of expired jobs from its tail. Returns how many moved.

    The ids are taken (RPOP, atomic) before they are pushed, so two workers never
    push one id twice; a process killed between the two commands leaves that id
    out of ``dead_letter`` (its job stays listed by GET /dead-letter)."""
    taken = client.rpop(keys.dead(queue), MIRROR_BATCH)
    if not taken:
        return 0
    ids = [str(i) for i in taken]  # oldest first
    pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    pipe.lpush(keys.dead_letter(), *ids)
    if dead_max > 0:
        pipe.ltrim(keys.dead_letter(), 0, dead_max - 1)
    pipe.execute()
    for _ in range(MIRROR_PRUNE):
        oldest = client.lindex(keys.dead_letter(), -1)
        if oldest is None or client.exists(keys.job(str(oldest))):
            break
        client.lrem(keys.dead_letter(), -1, str(oldest))
    return len(ids)


def unmirror(client: redis.RedisCluster, ids: Sequence[str]) -> None:
    """Remove `ids` (replayed or purged) from ``dead_letter``."""
    if not ids:
        return
    pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    for job_id in ids:
        # Replays and purges go newest first: found near the head.
        pipe.lrem(keys.dead_letter(), 1, job_id)
    pipe.execute()


def one_slot(queues: Sequence[str]) -> bool:
    """True when every queue of `queues` lies in one hash slot."""
    return len({queue_slot(q) for q in queues}) <= 1


class Wakers:
    """One thread per hash slot of a worker's queues, each blocked on that slot's
    wakeup keys (BZPOPMIN, at most `poll_s` per call); a pop wakes the runners.

    Each thread holds one connection while it blocks. A pop consumes the wakeup
    marker, as the single-slot wait does: the runners then claim, and a claim
    that leaves jobs behind puts the marker back (claim.lua).
    """

    def __init__(self, client: redis.RedisCluster, poll_s: float) -> None:
        self._client = client
        self._poll_s = poll_s
        self._event = threading.Event()
        self._stop = threading.Event()
        self._groups: dict[int, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def wait(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until a queue of `queues` is woken (True) or `timeout_s` pass."""
        self._start(queues)
        woken = self._event.wait(timeout_s)
        self._event.clear()
        return woken

    def close(self) -> None:
        """Stop the threads (each ends within `poll_s`)."""
        self._stop.set()

    def _start(self, queues: Sequence[str]) -> None:
        by_slot: dict[int, list[str]] = {}
        for q in queues:
            by_slot.setdefault(queue_slot(q), []).append(q)
        with self._lock:
            for slot, names in by_slot.items():
                if slot in self._groups:
                    continue
                self._groups[slot] = tuple(names)
                thread = threading.Thread(
                    target=self._run, args=(tuple(names),), name=f"waker-{slot}", daemon=True
                )
                thread.start()

    def _run(self, queues: tuple[str, ...]) -> None:
        wakeups = [keys.wakeup(q) for q in queues]
        failures = 0
        while not self._stop.is_set():
            try:
                if self._client.bzpopmin(wakeups, timeout=self._poll_s):
                    self._event.set()
                failures = 0
            except (redis.RedisError, redis.exceptions.RedisClusterException, StoreUnavailable):
                # Redis or the slot's shard is away (a failover): the runners poll
                # every WORKER_POLL_SECONDS meanwhile; try again after a pause.
                if self._stop.is_set():
                    return  # closed (the Store's client with it)
                failures += 1
                if failures == 1:
                    logger.warning("waker of %s: Redis Cluster unreachable", ",".join(queues))
                self._stop.wait(min(self._poll_s, 0.1 * 2**failures))


class ClusterProbe:
    """GET /health on a cluster: every primary answers CLUSTER INFO with
    ``cluster_state:ok``, each socket operation within `deadline_s`."""

    def __init__(self, settings: Settings, deadline_s: float) -> None:
        options = {
            "decode_responses": True,
            "socket_timeout": deadline_s,
            "socket_connect_timeout": deadline_s,
        }
        self._settings, self._options = settings, options
        self._client: redis.RedisCluster | None = None

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the cluster is up and every primary answers."""
        try:
            if self._client is None:
                self._client = connect_cluster(self._settings, self._options)
            answers = self._client.cluster_info(target_nodes=redis.RedisCluster.PRIMARIES)
            # One node answers with its fields; several with {node: fields}.
            infos: list[Any] = [answers] if "cluster_state" in answers else list(answers.values())
            for info in infos:
                state = dict(info).get("cluster_state")
                if state != "ok":
                    raise StoreUnavailable(f"Redis Cluster state is {state!r}")
        except (redis.RedisError, redis.exceptions.RedisClusterException) as e:
            raise StoreUnavailable(f"Redis Cluster is unreachable: {e}") from e

    def close(self) -> None:
        """Close its connections."""
        if self._client is not None:
            self._client.close()
