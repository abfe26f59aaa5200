"""The worker registry behind ``GET /workers``: who is running, where, and on what.

Each worker renews its registration with every heartbeat (about once a second,
`worker_beat.lua`: the ZSET `keys.workers` scores it by the Redis clock, the
HASH `keys.worker` holds its details) and removes it when it stops gracefully. A
worker killed outright stops renewing: readers leave out every worker whose
last heartbeat is older than WORKER_LIVENESS_SECONDS and prune it from the ZSET
(`workers_live.lua`); its HASH expires by its TTL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from jobsys.store import keys
from jobsys.store.translate import translate_errors

if TYPE_CHECKING:
    from jobsys.store.store import Store


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker as `GET /workers` shows it."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    current_jobs: list[str]
    started_at: str
    last_heartbeat: str
    #: Attempts it has finished (completed or failed).
    processed: int
    #: Attempts that failed (retried or dead-lettered).
    failed: int
    #: ``<host>:<pid>`` of the supervisor of `jobsys worker --processes` it runs
    #: under, or None for a worker process of its own.
    supervisor: str | None = None

    @classmethod
    def from_hash(cls, worker_id: str, fields: dict[str, str]) -> WorkerInfo:
        """Build it from the worker's registration HASH."""
        return cls(
            id=worker_id,
            host=fields.get("host", ""),
            pid=int(fields.get("pid", "0")),
            queues=list(json.loads(fields.get("queues", "[]"))),
            concurrency=int(fields.get("concurrency", "0")),
            current_jobs=list(json.loads(fields.get("current_jobs", "[]"))),
            started_at=fields.get("started_at", ""),
            last_heartbeat=fields.get("last_heartbeat", ""),
            processed=int(fields.get("processed", "0")),
            failed=int(fields.get("failed", "0")),
            supervisor=fields.get("supervisor") or None,
        )

    def to_api(self) -> dict[str, Any]:
        """The JSON object of one worker in `GET /workers`."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "current_jobs": self.current_jobs,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
            "processed": self.processed,
            "failed": self.failed,
        } | ({"supervisor": self.supervisor} if self.supervisor else {})


def registration(
    host: str,
    pid: int,
    queues: list[str],
    concurrency: int,
    started_at: str,
    current_jobs: list[str],
    processed: int,
    failed: int,
    supervisor: str | None = None,
) -> dict[str, Any]:
    """The HASH fields a worker registers (worker_beat.lua adds last_heartbeat)."""
    return ({"supervisor": supervisor} if supervisor else {}) | {
        "host": host,
        "pid": pid,
        "queues": json.dumps(queues),
        "concurrency": concurrency,
        "started_at": started_at,
        "current_jobs": json.dumps(current_jobs),
        "processed": processed,
        "failed": failed,
    }


def live_ids(store: Store, window_s: float) -> list[str]:
    """The ids of live workers (pruning dead ones from the registry)."""
    with translate_errors():
        return store.scripts.workers_live(round(window_s * 1000))


def live(store: Store, window_s: float) -> list[WorkerInfo]:
    """Every live worker, by id."""
    ids = live_ids(store, window_s)
    with translate_errors():
        pipe = store.redis.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(keys.worker(worker_id))
        hashes = cast(list[dict[str, str]], pipe.execute())
    # A HASH that expired between the two calls belongs to a worker that just died.
    found = [WorkerInfo.from_hash(i, h) for i, h in zip(ids, hashes, strict=True) if h]
    return sorted(found, key=lambda w: w.id)


def deregister(store: Store, worker_id: str) -> None:
    """Remove a worker from the registry (at its graceful stop)."""
    with translate_errors():
        pipe = store.redis.pipeline(transaction=False)
        pipe.zrem(keys.workers(), worker_id)
        pipe.delete(keys.worker(worker_id))
        pipe.execute()
