"""Flow control (docs/flow-control.md): pausing queues, and acting on one job by id.

Every change is one script (pause.lua, ...), so it is one atomic step in Redis;
this module only finds the job's queue and turns the scripts' answers into
answers or errors.
"""

from __future__ import annotations

import redis

from jobsys.errors import QueueNotFound
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
