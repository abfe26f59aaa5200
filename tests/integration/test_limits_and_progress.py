"""Per-job timeouts (handlers in child processes), RetryAfter and progress reports."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
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
    w._heartbeat_stop.set()
    beat.join()


def test_a_job_with_a_timeout_runs_in_a_child_process(worker: Worker, store: Store) -> None:
    job_id = store.submit("pid", timeout_s=10)
    worker.run_once()
    job = store.get(job_id)
    assert job.status == "completed"
    assert job.result != os.getpid()
    assert job.to_api()["timeout_seconds"] == 10


def test_an_attempt_that_overruns_its_timeout_is_stopped_and_fails(
    worker: Worker, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("sleep", 60, timeout_s=0.5, max_retries=0)
    t0 = time.monotonic()
    worker.run_once()
    assert time.monotonic() - t0 < 5
    job = store.get(job_id)
    assert job.status == "failed"
    assert "timed out after 0.5s" in (job.error or "")
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [job_id]


def test_a_timed_out_attempt_is_retried_like_any_failure(worker: Worker, store: Store) -> None:
    job_id = store.submit("sleep", 60, timeout_s=0.3, max_retries=1)
    worker.run_once()
    job = store.get(job_id)
    assert (job.status, job.attempts) == ("queued", 1)
    assert "timed out" in (job.error or "")


def test_cancelling_a_job_with_a_timeout_stops_its_process(worker: Worker, store: Store) -> None:
    job_id = store.submit("sleep", 60, timeout_s=120)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    deadline = time.monotonic() + 10
    while store.get(job_id).status != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    store.cancel(job_id)
    runner.join(10)
    assert not runner.is_alive(), "the child process was not stopped"
    job = store.get(job_id)
    assert job.status == "cancelled"
    assert "cancellation was requested" in (job.error or "")


def test_retry_after_sets_the_delay_of_the_next_attempt(settings: Settings, store: Store) -> None:
    job_id = store.submit("retry-later", 2.0)
    worker = Worker(settings.with_overrides(retry_backoff_s=1000), store)
    worker.run_once()
    job = store.get(job_id)
    assert job.status == "queued"
    assert "429" in (job.error or "")
    assert job.next_attempt_at is not None
    wait = datetime.fromisoformat(job.next_attempt_at) - datetime.fromisoformat(str(job.started_at))
    assert 1.5 < wait.total_seconds() < 3.0  # RetryAfter(2), not the 1000 s backoff
    time.sleep(wait.total_seconds())
    while worker.run_once() == 0:
        time.sleep(0.05)
    assert store.get(job_id).result == "done on attempt 2"


def test_progress_is_visible_while_the_job_runs(worker: Worker, store: Store) -> None:
    job_id = store.submit("steps", {"n": 4, "pause": 0.25})
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    seen: set[tuple[float, str]] = set()
    while runner.is_alive():
        job = store.get(job_id)
        if job.progress is not None:
            seen.add((job.progress, job.progress_message or ""))
        time.sleep(0.02)
    assert (0.5, "step 2 of 4") in seen
    assert store.get(job_id).progress == 1.0


def test_progress_from_a_child_process_reaches_redis(worker: Worker, store: Store) -> None:
    job_id = store.submit("steps", {"n": 2, "pause": 0.05}, timeout_s=10)
    worker.run_once()
    job = store.get(job_id).to_api()
    assert job["status"] == "completed"
    assert (job["progress"], job["progress_message"]) == (1.0, "step 2 of 2")


def test_a_stale_worker_cannot_write_progress(store: Store) -> None:
    job_id = store.submit("echo")
    claimed = store.claim("default", "w", 30, 1)[0]
    assert store.progress("default", job_id, "w", claimed.attempt, 0.5, "") is True
    assert store.progress("default", job_id, "other", claimed.attempt, 0.9, "") is False
    assert store.get(job_id).progress == 0.5
