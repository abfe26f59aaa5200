"""A batch's callbacks run exactly once when the worker that finishes its last job is
killed (SIGKILL) before, during or after that job's settle: real worker processes,
real signals (issue 17, docs/workflows.md)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from batch_checks import CRASH_BATCH_JOBS, assert_callbacks_ran_once, crash_batch, kill_at

from jobsys.store import Store

from processes import Proc, Procs, wait_for


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    procs = Procs(tmp_path)
    yield procs
    procs.stop_all()


def worker(procs: Procs, env: dict[str, str], queues: str) -> Proc:
    return procs.start(
        ["worker", "--tasks", "sample_tasks", "--concurrency", "1", "--queues", queues],
        env,
        "worker",
    )


def started(client: redis.Redis, attempt: int) -> bool:
    return any(e.startswith(f"started:{attempt}:") for e in client.lrange("test:executions", 0, -1))


@pytest.mark.parametrize("point", ["before", "during", "after"])
def test_the_callbacks_run_once_whenever_the_last_jobs_worker_is_killed(
    point: str, env: dict[str, str], store: Store, redis_client: redis.Redis, procs: Procs
) -> None:
    env = {**env, "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.2"}
    batch_id, done, cbs = crash_batch(store, point, "cb")
    last = done.ids[-1]
    # The victim serves the batch's queue only, so it never runs a callback itself.
    victim = worker(procs, env, "work")
    wait_for(lambda: started(redis_client, 1), 30, what="the last job to start")
    kill_at(point, victim, store, last, paused=redis_client)
    survivor = worker(procs, env, "work,cb")

    assert_callbacks_ran_once(redis_client, store, batch_id, cbs, total=CRASH_BATCH_JOBS)
    assert store.get(last).status == "completed"
    survivor.signal(signal.SIGTERM)
    survivor.wait(15)
