"""What a worker counts for the metrics, added up in memory and flushed once a second.

Runner threads record each job's start and each settled batch here (a dict
update under a lock: no Redis call per job). The heartbeat thread calls `flush`
once a second: one pipeline that renews the worker's registration and adds the
counts to Redis (`Store.flush_telemetry`). A flush that cannot reach Redis
keeps its counts for the next one; a SIGKILL loses at most the last second's.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jobsys.errors import StoreUnavailable
from jobsys.store import BUCKETS_S, Claimed, Deltas, Store, bucket_field, counter_field

#: Settle verdict -> (counter, throughput column or None).
_OUTCOMES = {
    "completed": ("completed", "completed"),
    "retry": ("retried", "failed"),
    "dead": ("dead_lettered", "failed"),
    "cancelled": ("cancelled", None),
}


class Telemetry:
    """One worker process's unflushed counts. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas = Deltas()
        #: Redis clock minus this machine's, ms (learnt at each flush), so that the
        #: throughput minutes of every worker line up.
        self._offset_ms = 0

    def minute(self) -> int:
        """The current minute since the epoch, by the Redis clock."""
        return int((time.time() * 1000 + self._offset_ms) // 60000)

    def started(self, queue: str, job: Claimed) -> None:
        """Count a handler start; on a first attempt, observe its wait."""
        wait_s = _wait_s(job) if job.attempt == 1 else None
        names = _names(job.task)
        with self._lock:
            counts = self._deltas.counts
            counts[(queue, names.started)] += 1
            if wait_s is not None:
                self._observe(queue, names.wait, wait_s)

    def settled(self, queue: str, outcomes: Iterable[tuple[str, str, float]]) -> None:
        """Count settled attempts: (task, verdict, run time in seconds) each."""
        minute = self.minute()
        with self._lock:
            counts, tp = self._deltas.counts, self._deltas.throughput
            for task, verdict, run_s in outcomes:
                kind = _OUTCOMES.get(verdict)
                if kind is None:  # "stale": another worker has the job now
                    continue
                names = _names(task)
                counts[(queue, names.outcomes[verdict])] += 1
                if kind[1] is not None:
                    tp[(queue, minute, kind[1])] += 1
                self._observe(queue, names.run, run_s)

    def recovered(self, queue: str, verdicts: Iterable[tuple[str, str]]) -> None:
        """Count jobs of dead workers taken back: (task, verdict) each."""
        minute = self.minute()
        with self._lock:
            counts, tp = self._deltas.counts, self._deltas.throughput
            for task, verdict in verdicts:
                kind = _OUTCOMES.get(verdict)
                if kind is not None:
                    counts[(queue, counter_field(kind[0], task))] += 1
                    if kind[1] is not None:
                        tp[(queue, minute, kind[1])] += 1

    def _observe(self, queue: str, fields: _Histogram, seconds: float) -> None:
        # Caller holds the lock.
        counts = self._deltas.counts
        counts[(queue, fields.buckets[bisect_left(BUCKETS_S, seconds)])] += 1
        counts[(queue, fields.count)] += 1
        self._deltas.sums[(queue, fields.sum)] += seconds

    def take(self) -> Deltas:
        """The counts so far; starts afresh."""
        with self._lock:
            deltas, self._deltas = self._deltas, Deltas()
        return deltas

    def give_back(self, deltas: Deltas) -> None:
        """Keep counts that could not be written, for the next flush."""
        with self._lock:
            self._deltas.merge(deltas)

    def flush(
        self, store: Store, worker_id: str, registration: dict[str, Any], ttl_s: float
    ) -> bool:
        """Renew the registration and write the counts: one pipeline. Raises
        `StoreUnavailable` (the counts are kept). False when the registration was not
        written (Redis had lost the function library, now loaded again)."""
        deltas = self.take()
        try:
            now_ms = store.flush_telemetry(worker_id, registration, deltas, ttl_s)
        except StoreUnavailable:
            # The next flush tries again. (Were the connection lost after Redis ran
            # part of the pipeline, that part would be counted twice.)
            self.give_back(deltas)
            raise
        if now_ms is None:
            return False
        self._offset_ms = now_ms - round(time.time() * 1000)
        return True


@dataclass(frozen=True)
class _Histogram:
    """The hash fields of one histogram of one task."""

    buckets: tuple[str, ...]
    count: str
    sum: str


def _histogram(name: str, task: str) -> _Histogram:
    return _Histogram(
        tuple(bucket_field(name, i, task) for i in range(len(BUCKETS_S) + 1)),
        counter_field(f"{name}_count", task),
        counter_field(f"{name}_sum", task),
    )


@dataclass(frozen=True)
class _TaskNames:
    """Every hash field a worker counts a task's jobs in, made once per task."""

    started: str
    #: Settle verdict -> its counter's field.
    outcomes: dict[str, str]
    wait: _Histogram
    run: _Histogram


#: Most task names whose fields `_names` keeps (task names come from producers).
NAMES_CACHE_SIZE = 1024


@lru_cache(maxsize=NAMES_CACHE_SIZE)
def _names(task: str) -> _TaskNames:
    return _TaskNames(
        started=counter_field("started", task),
        outcomes={v: counter_field(kind[0], task) for v, kind in _OUTCOMES.items()},
        wait=_histogram("wait_seconds", task),
        run=_histogram("run_seconds", task),
    )


def _wait_s(job: Claimed) -> float | None:
    """Seconds from submit (or, for a delayed job, its due time) to the claim."""
    since = max(job.created_ms, job.run_at_ms)
    if not since or not job.claimed_ms:
        return None
    return max(0.0, (job.claimed_ms - since) / 1000)
