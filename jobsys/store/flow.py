"""Flow control (docs/flow-control.md): pausing queues, and acting on one job by id.

Every change is one script (pause.lua, ...), so it is one atomic step in Redis;
this module only finds the job's queue and turns the scripts' answers into
answers or errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from jobsys import stamps
from jobsys.errors import JobNotFound, JobStateConflict, QueueNotFound
from jobsys.stamps import stamp
from jobsys.store import keys
from jobsys.store.scripts import Scripts
from jobsys.store.translate import translate_errors


@dataclass(frozen=True)
class Limits:
    """The limits of a queue, or of one task in it (docs/flow-control.md)."""

    #: At most `rate[0]` starts per `rate[1]` seconds; None: no rate limit.
    rate: tuple[int, float] | None = None
    #: At most this many running jobs per concurrency_key; None: no limit.
    concurrency: int | None = None
    #: No job starts before this (ms, Redis clock): a RateLimited hold; None: none.
    hold_until_ms: int | None = None

    def to_api(self) -> dict[str, Any]:
        """The JSON form of GET /queues and /queues/<name>/limits."""
        rate = {"limit": self.rate[0], "period_seconds": self.rate[1]} if self.rate else None
        out: dict[str, Any] = {"rate": rate, "concurrency": self.concurrency}
        if self.hold_until_ms is not None:
            out["hold_until"] = stamp(str(self.hold_until_ms))
        return out


@dataclass(frozen=True)
class FlowState:
    """A queue's flow control as its flow hash holds it."""

    paused: bool = False
    queue: Limits = Limits()
    tasks: dict[str, Limits] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, fields: Mapping[str, str], now_ms: int) -> FlowState:
        """Read a flow hash (see flow_rules in _lib.lua); holds already past are left out."""
        parts: dict[str, dict[str, str]] = {}
        for name, value in fields.items():
            kind, _, task = name.partition("|")
            parts.setdefault(task if _ else "", {})[kind] = value
        limits = {task: _limits(f, now_ms) for task, f in parts.items()}
        own = limits.pop("", Limits())
        tasks = {t: lim for t, lim in sorted(limits.items()) if lim != Limits()}
        return cls("paused" in fields, own, tasks)

    def to_api(self) -> dict[str, Any]:
        """The JSON form (without the queue's name)."""
        tasks = {t: lim.to_api() for t, lim in self.tasks.items()}
        return {"paused": self.paused, **self.queue.to_api(), "tasks": tasks}


def _limits(f: Mapping[str, str], now_ms: int) -> Limits:
    rate = None
    if "rate" in f:
        n, period_ms = f["rate"].split(",")
        rate = (int(n), int(period_ms) / 1000)
    hold = int(f["hold"]) if "hold" in f and int(f["hold"]) > now_ms else None
    return Limits(rate, int(f["conc"]) if "conc" in f else None, hold)


class FlowControl:
    """Pause and resume queues; promote, retry and re-prioritise jobs."""

    def __init__(self, client: redis.Redis, scripts: Scripts) -> None:
        self._redis = client
        self._scripts = scripts

    def set_paused(self, queue: str, paused: bool) -> bool:
        """Pause (`paused`) or resume `queue`: a paused queue takes submits, but no
        worker starts its jobs; running ones finish. Returns whether it is paused.
        Raises `QueueNotFound` for a queue that has never had a job."""
        with translate_errors():
            if not self._redis.sismember(keys.queues(), queue):
                raise QueueNotFound(queue)
            return self._scripts.pause(queue, paused)

    def set_limits(
        self,
        queue: str,
        task: str | None = None,
        rate: tuple[int, float] | None = None,
        concurrency: int | None = None,
    ) -> FlowState:
        """Set the limits of `queue`, or of `task` in it: at most `rate[0]` starts per
        `rate[1]` seconds, at most `concurrency` running jobs per concurrency_key
        (None: no such limit). Returns the queue's flow state afterwards. Raises
        `QueueNotFound`."""
        rate_arg = f"{rate[0]:d},{stamps.duration_ms(rate[1]):d}" if rate else ""
        conc_arg = "" if concurrency is None else str(concurrency)
        with translate_errors():
            if not self._redis.sismember(keys.queues(), queue):
                raise QueueNotFound(queue)
            self._scripts.set_limits(queue, task, rate_arg, conc_arg)
        return self.state(queue)

    def state(self, queue: str) -> FlowState:
        """The pause and the limits of `queue`. Raises `QueueNotFound`."""
        with translate_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.sismember(keys.queues(), queue)
            pipe.hgetall(keys.flow(queue))
            if isinstance(self._redis, redis.RedisCluster):
                # A cluster pipeline refuses TIME (it has no key to route by): ask the
                # queue's own shard, whose clock stamped the holds, after the pipeline.
                known, fields = pipe.execute()
                node = self._redis.get_node_from_key(keys.flow(queue))
                now_s, now_us = self._redis.time(target_nodes=node)
            else:
                pipe.time()
                known, fields, (now_s, now_us) = pipe.execute()
        if not known:
            raise QueueNotFound(queue)
        return FlowState.from_hash(cast(dict[str, str], fields), now_s * 1000 + now_us // 1000)

    def rate_limited(
        self, queue: str, worker: str, jobs: Sequence[tuple[str, int, float, str]]
    ) -> list[str]:
        """Hand back jobs whose handler raised RateLimited [(id, attempt, retry_after_s,
        "task" | "queue")], the attempt not counted, and hold their task (or queue)
        off that long: "held", "cancelled" or "stale" each."""
        items = [(i, a, stamps.duration_ms(s), w) for i, a, s, w in jobs]
        with translate_errors():
            return self._scripts.rate_limited(queue, worker, items)

    def paused(self, queue: str) -> bool:
        """Whether `queue` is paused."""
        with translate_errors():
            return bool(self._redis.hexists(keys.flow(queue), "paused"))

    def promote(self, job_id: str) -> None:
        """Run now a job that waits for a due time (a delayed job, or a retry in its
        backoff). Raises `JobNotFound`, or `JobStateConflict` in any other status."""
        queue = self._queue_of(job_id)
        with translate_errors():
            verdict = self._scripts.promote(queue, job_id)
        if verdict == "missing":
            raise JobNotFound(job_id)
        if verdict != "promoted":
            status = "queued and ready to run" if verdict == "ready" else verdict
            raise JobStateConflict(job_id, status, "promote", _WAITING_FOR_DUE_TIME)

    def retry(self, job_id: str) -> None:
        """Queue a `failed` job again, as retrying it from the dead letter does
        (replay.lua: attempts 0, out of dead_letter). Raises `JobNotFound`, or
        `JobStateConflict` when it is not failed."""
        queue = self._queue_of(job_id)
        with translate_errors():
            if self._scripts.replay(queue, [job_id]):
                return
            status = self._redis.hget(keys.job(job_id), "status")
        if status is None:
            raise JobNotFound(job_id)
        raise JobStateConflict(job_id, str(status), "retry", "a failed job")

    def reprioritize(self, job_id: str, priority: int) -> None:
        """Give a job that has not started (queued or scheduled) a new priority.
        Raises `JobNotFound`, or `JobStateConflict` when it has started or ended."""
        queue = self._queue_of(job_id)
        with translate_errors():
            verdict = self._scripts.reprioritize(queue, job_id, priority)
        if verdict == "missing":
            raise JobNotFound(job_id)
        if verdict != "changed":
            raise JobStateConflict(job_id, verdict, "a priority change", "a waiting job")

    def _queue_of(self, job_id: str) -> str:
        with translate_errors():
            queue = self._redis.hget(keys.job(job_id), "queue")
        if queue is None:
            raise JobNotFound(job_id)
        return str(queue)


_WAITING_FOR_DUE_TIME = "a scheduled job or a retry waiting out its backoff"
