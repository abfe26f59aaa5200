"""A real `jobsys worker` process running ``async def`` handlers on its event loop."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobsys.store import Store
from jobsys.store.submission import Submission

from processes import Proc, Procs, wait_for, wait_started

#: Time bounds a parallel run would blur: `make test` runs these alone (pyproject).
pytestmark = pytest.mark.serial


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def start_worker(procs: Procs, env: dict[str, str], store: Store, *args: str) -> Proc:
    worker = procs.start(["worker", "--tasks", "sample_tasks", *args], env, "worker")
    wait_for(lambda: len(store.live_workers(5)) == 1, 20, what="the worker to register")
    return worker


def test_a_thousand_async_jobs_of_one_second_drain_in_under_5_s_in_one_process(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    worker = start_worker(procs, env, store, "--async-concurrency", "1000")
    t0 = time.monotonic()
    ids = store.submit_jobs([Submission("async-sleep", 1.0) for _ in range(1000)]).ids
    pending = set(ids)

    def all_completed() -> bool:
        pending.difference_update([i for i in list(pending) if store.get(i).status == "completed"])
        return not pending

    wait_for(all_completed, 30, what="1,000 jobs to complete")
    took = time.monotonic() - t0
    assert took < 5, f"1,000 async jobs of 1 s took {took:.1f}s"
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_sigterm_lets_running_async_jobs_finish(
    env: dict[str, str], store: Store, procs: Procs, redis_client: redis.Redis
) -> None:
    worker = start_worker(procs, env, store)
    ids = [store.submit("async-sleep", 1.0) for _ in range(5)]
    wait_started(worker.output, *ids)
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert [store.get(i).status for i in ids] == ["completed"] * 5


def test_sigterm_past_the_grace_hands_running_async_jobs_back(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    worker = start_worker(procs, {**env, "SHUTDOWN_GRACE_SECONDS": "0.5"}, store)
    ids = [store.submit("async-sleep", 30) for _ in range(3)]
    wait_for(lambda: all(store.get(i).status == "processing" for i in ids), 10, what="jobs to run")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    for job_id in ids:
        job = store.get(job_id)
        assert (job.status, job.attempts) == ("queued", 0)
