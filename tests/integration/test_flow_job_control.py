"""Job control by id (docs/flow-control.md): promote, retry, a priority change, each
through the HTTP API against a real Redis."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)

JSON = "application/json"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_promote_runs_a_delayed_job_now(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    job_id = store.submit("echo", 1, delay_s=3600)
    worker = Worker(settings, store)
    assert worker.run_once() == 0
    answer = client.post(f"/jobs/{job_id}/promote", content_type=JSON)
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "queued"
    assert redis_client.zcard(keys.scheduled("default")) == 0
    assert redis_client.zscore(keys.index("default", "queued"), job_id) is not None
    assert redis_client.zscore(keys.index("default", "scheduled"), job_id) is None
    assert worker.run_once() == 1
    assert store.get(job_id).status == "completed"
    # Now it has ended: nothing to promote.
    answer = client.post(f"/jobs/{job_id}/promote", content_type=JSON)
    assert answer.status_code == 409
    assert "completed" in answer.get_json()["detail"]


def test_promote_runs_a_retry_in_its_backoff_now(settings: Settings, store: Store) -> None:
    job_id = store.submit("boom", 1)
    worker = Worker(settings.with_overrides(retry_backoff_s=3600), store)
    worker.run_once()
    assert store.get(job_id).next_attempt_at
    assert worker.run_once() == 0
    store.flow.promote(job_id)
    job = store.get(job_id)
    assert job.status == "queued" and not job.next_attempt_at
    assert worker.run_once() == 1
    assert store.get(job_id).attempts == 2


def test_promote_refuses_a_ready_job_and_answers_404_for_an_unknown_one(
    store: Store, client: FlaskClient
) -> None:
    job_id = store.submit("echo", 1)
    answer = client.post(f"/jobs/{job_id}/promote", content_type=JSON)
    assert answer.status_code == 409
    assert answer.get_json()["error"] == "conflict"
    for action in ("promote", "retry"):
        assert client.post(f"/jobs/{UNKNOWN}/{action}", content_type=JSON).status_code == 404
        assert client.post(f"/jobs/nope/{action}", content_type=JSON).status_code == 404
    assert client.patch(f"/jobs/{UNKNOWN}", json={"priority": 1}).status_code == 404


def test_retry_queues_a_failed_job_again_and_takes_it_out_of_the_dead_letter(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    job_id = store.submit("boom", 1, max_retries=0)
    worker = Worker(settings, store)
    worker.run_once()
    assert store.get(job_id).status == "failed"
    assert redis_client.lrange("dead_letter", 0, -1) == [job_id]
    answer = client.post(f"/jobs/{job_id}/retry", content_type=JSON)
    assert answer.status_code == 200
    job = answer.get_json()
    assert job["status"] == "queued" and job["attempts"] == 0
    assert redis_client.llen("dead_letter") == 0
    assert redis_client.zcard(keys.index("default", "failed")) == 0
    worker.run_once()
    # Queued or running jobs cannot be retried.
    other = store.submit("echo", 2)
    answer = client.post(f"/jobs/{other}/retry", content_type=JSON)
    assert answer.status_code == 409
    assert "queued" in answer.get_json()["detail"]


def test_a_priority_change_reorders_the_waiting_jobs(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    first, second, third = store.submit_many([("echo", 1), ("echo", 2), ("echo", 3)])
    answer = client.patch(f"/jobs/{third}", json={"priority": 10})
    assert answer.status_code == 200
    assert answer.get_json()["priority"] == 10
    client.patch(f"/jobs/{first}", json={"priority": -5})
    worker = Worker(settings, store)
    order = []
    for _ in range(3):
        (job,) = store.claim("default", "w", 30, 1)
        order.append(job.id)
    assert order == [third, second, first]
    # Started jobs keep theirs.
    answer = client.patch(f"/jobs/{first}", json={"priority": 50})
    assert answer.status_code == 409
    assert "processing" in answer.get_json()["detail"]
    assert worker.run_once() == 0


def test_a_priority_change_of_a_delayed_job_counts_when_it_is_due(
    store: Store, client: FlaskClient
) -> None:
    late = store.submit("echo", 1, delay_s=3600)
    early = store.submit("echo", 2)
    assert client.patch(f"/jobs/{late}", json={"priority": 100}).status_code == 200
    store.flow.promote(late)
    (job,) = store.claim("default", "w", 30, 1)
    assert job.id == late
    assert early


def test_a_bad_priority_is_a_400_naming_the_field(store: Store, client: FlaskClient) -> None:
    job_id = store.submit("echo", 1)
    for body in ({"priority": 101}, {"priority": "high"}, {"priority": 1, "x": 2}, {}):
        answer = client.patch(f"/jobs/{job_id}", json=body)
        assert answer.status_code == 400, body
    assert client.patch(f"/jobs/{job_id}", json={"priority": 101}).get_json()["field"] == "priority"
    assert store.get(job_id).priority == 0
