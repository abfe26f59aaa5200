"""Cancelling jobs in every state, against a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.api import create_app
from jobsys.errors import JobAlreadyFinished, JobNotFound
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The `record` handler finds Redis through REDIS_URL, as in a worker process."""
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def test_a_queued_job_is_cancelled_and_never_runs(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("echo", 1)
    job = store.cancel(job_id)
    assert job.status == "cancelled"
    assert job.cancelled_at
    assert redis_client.zcard(keys.ready("default")) == 0
    assert Worker(settings, store).run_once() == 0
    assert store.get(job_id).status == "cancelled"


def test_a_scheduled_job_is_cancelled(store: Store, redis_client: redis.Redis) -> None:
    job_id = store.submit("echo", 1, delay_s=60)
    assert store.cancel(job_id).status == "cancelled"
    assert redis_client.zcard(keys.scheduled("default")) == 0


def test_a_retry_in_backoff_is_cancelled(settings: Settings, store: Store) -> None:
    job_id = store.submit("boom", 1)
    Worker(settings.with_overrides(retry_backoff_s=60), store).run_once()
    assert store.get(job_id).next_attempt_at
    job = store.cancel(job_id).to_api()
    assert job["status"] == "cancelled"
    assert "next_attempt_at" not in job


def test_ended_and_unknown_jobs_cannot_be_cancelled(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", 1)
    Worker(settings, store).run_once()
    with pytest.raises(JobAlreadyFinished, match="completed"):
        store.cancel(job_id)
    store.cancel(cancelled := store.submit("echo"))
    with pytest.raises(JobAlreadyFinished, match="cancelled"):
        store.cancel(cancelled)
    with pytest.raises(JobNotFound):
        store.cancel("00000000-0000-4000-8000-000000000000")


def test_a_running_job_is_told_and_ends_cancelled(settings: Settings, store: Store) -> None:
    job_id = store.submit("cooperative", 30)
    worker = Worker(settings, store)
    beat = threading.Thread(target=worker._heartbeat_loop, daemon=True)
    beat.start()
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while store.get(job_id).status != "processing":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        job = store.cancel(job_id)
        assert (job.status, job.cancel_requested) == ("processing", True)
        runner.join(5)
        assert not runner.is_alive(), "the handler never heard of the cancellation"
    finally:
        worker._heartbeat_stop.set()
        beat.join()
    job = store.get(job_id).to_api()
    assert job["status"] == "cancelled"
    assert job["result"] == "stopped early"
    assert "cancel_requested" not in job


def test_a_running_job_that_fails_after_a_cancel_is_not_retried(store: Store) -> None:
    job_id = store.submit("boom", 1)
    claimed = store.claim("default", "w", 30, 1)[0]
    store.cancel(job_id)
    assert store.fail("default", job_id, "w", claimed.attempt, "boom", 0) == "cancelled"
    assert store.get(job_id).status == "cancelled"


def test_a_cancelled_job_whose_worker_died_ends_cancelled(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", 1)
    store.claim("default", "dead", 0.05, 1)
    store.cancel(job_id)
    time.sleep(0.1)
    assert Worker(settings, store).recover_once() == [(job_id, "cancelled")]
    assert store.get(job_id).status == "cancelled"


def test_cancel_over_the_api(settings: Settings, store: Store) -> None:
    app = create_app(settings)
    client: FlaskClient = app.test_client()
    job_id = store.submit("echo", 1)
    r = client.post(f"/jobs/{job_id}/cancel", content_type="text/plain")
    assert r.status_code == 415  # no JSON type: what a cross-site form sends
    r = client.post(f"/jobs/{job_id}/cancel", content_type="application/json")
    assert r.status_code == 200
    assert r.json["status"] == "cancelled"
    r = client.post(f"/jobs/{job_id}/cancel", json=None, content_type="application/json")
    assert r.status_code == 409
    assert r.json["error"] == "conflict"
    assert "cancelled" in r.json["detail"]
    unknown = "/jobs/00000000-0000-4000-8000-000000000000/cancel"
    assert client.post(unknown, content_type="application/json").status_code == 404
    assert client.get(f"/jobs/{job_id}/cancel").status_code == 405


def test_a_job_cancelled_while_waiting_in_a_batch_never_starts(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    ids = [store.submit("record", {"tag": str(i)}) for i in range(4)]
    worker = Worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 100)
    assert [c.id for c in claimed] == ids[:2]
    for job in claimed:
        worker._hold("default", job)
    store.cancel(ids[1])
    worker.heartbeat_once()
    assert worker._run_batch("default", claimed) == 2  # both settled, one never started
    assert store.get(ids[0]).status == "completed"
    cancelled = store.get(ids[1]).to_api()
    assert cancelled["status"] == "cancelled"
    assert "result" not in cancelled
    assert [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)] == ["0"]
