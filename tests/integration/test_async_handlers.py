"""``async def`` handlers: run on the worker's event loop, against a real Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import redis

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


@pytest.fixture
def worker(settings: Settings, store: Store) -> Iterator[Worker]:
    """A worker whose heartbeat thread runs (so it hears of cancellations)."""
    w = Worker(settings.with_overrides(tasks_module="sample_tasks"), store)
    beat = threading.Thread(target=w._heartbeat_loop, daemon=True)
    beat.start()
    yield w
    w.stopping.set()
    if w._aio is not None:
        w._aio.stop(2.0)
    w._heartbeat_stop.set()
    beat.join()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_async_jobs_run_at_once_on_the_loop_and_know_their_job(
    worker: Worker, store: Store
) -> None:
    ids = [store.submit("async-sleep", 0.5) for _ in range(20)]
    t0 = time.monotonic()
    while sum(worker.run_once() for _ in range(3)):
        pass
    assert worker.wait_async(10)
    took = time.monotonic() - t0
    for job_id in ids:
        job = store.get(job_id)
        assert job.status == "completed"
        assert job.result == {"id": job_id}  # current_job() inside the asyncio task
    assert took < 20 * 0.5 / 2  # concurrent, not one after the other (generous)


def test_the_loop_runs_at_most_async_concurrency_jobs_at_once(
    settings: Settings, store: Store
) -> None:
    worker = Worker(settings.with_overrides(async_concurrency=2), store)
    ids = [store.submit("async-sleep", 0.3) for _ in range(4)]
    most = 0
    runner = threading.Thread(target=lambda: [worker.run_once() for _ in range(4)])
    runner.start()
    while runner.is_alive() or (worker._aio and worker._aio.running):
        most = max(most, worker._aio.running if worker._aio else 0)
        time.sleep(0.01)
    assert worker.wait_async(10)
    assert most == 2
    assert all(store.get(i).status == "completed" for i in ids)
    assert worker._aio is not None
    worker._aio.stop(1.0)


def test_a_failing_async_handler_fails_its_attempt(worker: Worker, store: Store) -> None:
    job_id = store.submit("async-boom", 7, max_retries=0)
    worker.run_once()
    assert worker.wait_async(10)
    job = store.get(job_id)
    assert job.status == "failed"
    assert job.error == "ValueError: async boom: 7"


def test_progress_of_an_async_job_reaches_redis(worker: Worker, store: Store) -> None:
    job_id = store.submit("async-steps", {"n": 4, "pause": 0.25})
    worker.run_once()
    seen: set[tuple[float, str]] = set()
    deadline = time.monotonic() + 10
    while store.get(job_id).status != "completed":
        assert time.monotonic() < deadline
        job = store.get(job_id)
        if job.progress is not None:
            seen.add((job.progress, job.progress_message or ""))
        time.sleep(0.02)
    assert (0.5, "step 2 of 4") in seen
    assert store.get(job_id).progress == 1.0


def test_cancelling_a_running_async_job_cancels_its_task_within_a_second(
    worker: Worker, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("async-cancellable", 60)
    worker.run_once()
    wait_until(lambda: worker._aio is not None and worker._aio.running == 1, 5, "the job to run")
    time.sleep(0.3)
    asked = time.time()
    store.cancel(job_id)
    wait_until(lambda: store.get(job_id).status == "cancelled", 5, "the job to end cancelled")
    # Redis and this test share the machine's clock.
    ended = datetime.fromisoformat(str(store.get(job_id).cancelled_at)).timestamp()
    assert ended - asked < 1.0
    assert redis_client.lrange("test:cancelled", 0, -1) == [job_id]  # CancelledError inside
    assert "CancelledError" in (store.get(job_id).error or "")


def test_an_async_job_that_overruns_its_timeout_fails_on_the_loop(
    worker: Worker, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("async-cancellable", 60, timeout_s=0.5, max_retries=0)
    worker.run_once()
    wait_until(lambda: store.get(job_id).status == "failed", 5, "the job to fail")
    job = store.get(job_id)
    # By the Redis clock: claimed at started_at, failed within 1 s of its deadline.
    ran = datetime.fromisoformat(str(job.failed_at)) - datetime.fromisoformat(str(job.started_at))
    assert 0.5 <= ran.total_seconds() < 0.5 + 1.0
    assert job.error == "timed out after 0.5s (timeout_seconds)"
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [job_id]
    assert worker._aio is not None and worker._aio.running == 0
    # On the loop, not in a forked child: the handler saw its CancelledError here.
    assert redis_client.lrange("test:cancelled", 0, -1) == [job_id]


def test_a_handler_that_blocks_the_loop_is_logged(
    worker: Worker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jobsys.worker.aio")
    job_id = store.submit("async-blocking", 1.2)
    worker.run_once()
    assert worker.wait_async(10)
    assert store.get(job_id).status == "completed"
    blocked = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert blocked, caplog.text
    assert "sample_tasks.py" in blocked[0].getMessage()  # the line that blocks
    wait_until(
        lambda: any("ran again" in r.getMessage() for r in caplog.records), 2, "the all-clear"
    )


def test_sync_and_async_jobs_share_a_batch(worker: Worker, store: Store) -> None:
    ids = [store.submit("async-sleep", 0.1), store.submit("echo", 1), store.submit("async-sleep")]
    while worker.run_once():
        pass
    assert worker.wait_async(10)
    assert [store.get(i).status for i in ids] == ["completed"] * 3
