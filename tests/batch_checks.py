"""What the batch crash tests (tests/e2e/test_batch_crash.py on one Redis,
test_cluster_relay_crash.py on a cluster) check once the worker that ended a batch's
last job was killed and another took over."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from jobsys.store import Store, Submission
from jobsys.store.submission import Submitted

from processes import Proc, wait_for

#: Jobs of the crash batch: 20 quick ones, then the last, which ends the batch.
CRASH_BATCH_JOBS = 21


def crash_batch(
    store: Store, point: str, callback_queue: str
) -> tuple[str, Submitted, dict[str, str]]:
    """A batch in queue ``work`` of 20 ``echo`` jobs and a last ``slow-first`` job
    that sleeps as long as the crash `point` needs (before: 30 s, during: 1 s,
    after: 0), with both callbacks (task ``callback``) in `callback_queue`: what
    `Store.create_batch` returns."""
    sleep_s = {"before": 30, "during": 1, "after": 0}[point]
    jobs = [Submission("echo", i) for i in range(20)] + [Submission("slow-first", sleep_s)]
    return store.create_batch(
        jobs,
        queue="work",
        on_complete=Submission("callback", "complete"),
        on_success=Submission("callback", "success"),
        callback_queue=callback_queue,
    )


def kill_at(point: str, victim: Proc, store: Store, last: str, paused: Any) -> None:
    """SIGKILL `victim`, the worker running the batch's `last` job, at crash `point`:
    "before" its settle (the handler is sleeping), "during" it (its complete.lua sent
    but held by ``CLIENT PAUSE WRITE`` on `paused`, a client of the queue's node), or
    "after" complete.lua ended the batch's last job. Returns once it is dead."""
    if point == "before":  # the handler is sleeping: nothing settled
        victim.signal(signal.SIGKILL)
    elif point == "during":  # its complete.lua sent but held by Redis when it dies
        paused.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            time.sleep(2.0)  # the handler returned; its settle waits in Redis
            victim.signal(signal.SIGKILL)
            victim.wait(10)
        finally:
            paused.execute_command("CLIENT", "UNPAUSE")
    else:  # right after complete.lua ended the batch's last job
        wait_for(lambda: store.get(last).status == "completed", 30, interval=0.002)
        victim.signal(signal.SIGKILL)
    victim.wait(10)


def assert_callbacks_ran_once(
    client: Any, store: Store, batch_id: str, callbacks: dict[str, str], total: int
) -> None:
    """Both callbacks of the batch (`callbacks`: name -> job id) ran exactly once, on
    their first attempt, and the batch counted `total` jobs completed. `client` reads
    the list ``test:callbacks`` the callback handler appends to."""
    wait_for(lambda: client.llen("test:callbacks") >= 2, 30, what="both callbacks")
    wait_for(lambda: store.batch(batch_id).finished_at is not None, 10, what="the batch")
    time.sleep(3)  # longer than a lease: a second callback would have come by now
    got = sorted(json.loads(c)["payload"] for c in client.lrange("test:callbacks", 0, -1))
    assert got == ["complete", "success"]
    for cb in callbacks.values():
        job = store.get(cb)
        assert (job.status, job.attempts) == ("completed", 1)
    info = store.batch(batch_id)
    assert (info.total, info.pending, info.completed, info.failed) == (total, 0, total, 0)
