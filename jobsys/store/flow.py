"""Flow control (docs/flow-control.md): pausing queues, and acting on one job by id.

Every change is one script (pause.lua, ...), so it is one atomic step in Redis;
this module only finds the job's queue and turns the scripts' answers into
answers or errors.
"""

from __future__ import annotations

import redis

from jobsys.errors import JobNotFound, JobStateConflict, QueueNotFound
from jobsys.store import keys
from jobsys.store.scripts import Scripts
from jobsys.store.translate import translate_errors


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
