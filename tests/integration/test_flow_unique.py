"""Unique jobs (docs/flow-control.md): one job per unique key of a queue while it
waits or runs, or within its window; the check and the submit are one script."""

from __future__ import annotations

import time

import redis
from flask.testing import FlaskClient
from redis_modes import all_keys

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


def test_a_second_submit_with_the_key_answers_the_first_job_until_it_ends(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    body = {"task": "echo", "payload": 1, "unique_key": "export:42"}
    first = client.post("/submit", json=body)
    assert first.status_code == 202
    job_id = first.get_json()["id"]
    assert "duplicate" not in first.get_json()
    again = client.post("/submit", json=body | {"payload": 2})
    assert again.status_code == 200
    assert again.get_json() == {"status": "queued", "task": "echo", "id": job_id, "duplicate": True}
    assert again.headers["Location"].endswith(f"/jobs/{job_id}")
    assert redis_client.zcard(keys.ready("default")) == 1
    # Running: still a duplicate.
    (running,) = store.claim("default", "w", 30, 1)
    again = client.post("/submit", json=body)
    assert again.get_json()["status"] == "processing"
    assert again.get_json()["id"] == job_id
    assert store.complete("default", job_id, "w", running.attempt, '"ok"')
    # Ended, no window: a new job.
    fresh = client.post("/submit", json=body)
    assert fresh.status_code == 202
    assert fresh.get_json()["id"] != job_id
    assert client.get(f"/jobs/{fresh.get_json()['id']}").get_json()["unique_key"] == "export:42"
    # The key is per queue.
    other = client.post("/submit", json=body | {"queue": "other"})
    assert other.status_code == 202


def test_the_window_holds_the_key_after_the_job_ended(settings: Settings, store: Store) -> None:
    sub = Submission("echo", 1, unique_key="daily", unique_for_s=0.5)
    first = store.submit_jobs([sub])
    Worker(settings, store).run_once()
    assert store.get(first.ids[0]).status == "completed"
    again = store.submit_jobs([sub])
    assert again.duplicate and again.ids == first.ids and again.statuses == ["completed"]
    time.sleep(0.6)
    later = store.submit_jobs([sub])
    assert not later.duplicate and later.ids != first.ids


def test_the_unique_key_expires_with_the_retention(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = Store(settings.with_overrides(completed_retention_s=60))
    done = store.submit_jobs([Submission("echo", unique_key="k", unique_for_s=5)])
    assert store.get(done.ids[0]).unique_key == "k"
    (key,) = all_keys(redis_client, "jobsys:queue:{default}:unique:*")
    assert 55_000 < redis_client.pttl(key) <= 60_000


def test_unique_fields_break_rules_with_a_400(client: FlaskClient) -> None:
    cases = (
        ({"task": "a", "unique_key": ""}, "unique_key"),
        ({"task": "a", "unique_key": 5}, "unique_key"),
        ({"task": "a", "unique_key": "k", "unique_for_seconds": 0}, "unique_for_seconds"),
        ({"jobs": [{"task": "a", "unique_key": "k"}]}, "jobs.0.unique_key"),
    )
    for body, field in cases:
        path = "/submit/batch" if "jobs" in body else "/submit"
        answer = client.post(path, json=body)
        assert answer.status_code == 400, body
        assert answer.get_json()["field"] == field, body


def test_an_idempotency_key_is_checked_before_the_unique_key(client: FlaskClient) -> None:
    body = {"task": "a", "unique_key": "k"}
    first = client.post("/submit", json=body, headers={"Idempotency-Key": "x"})
    assert first.status_code == 202
    again = client.post("/submit", json=body, headers={"Idempotency-Key": "x"})
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["id"] == first.get_json()["id"]
    other = client.post("/submit", json=body, headers={"Idempotency-Key": "y"})
    assert other.get_json()["duplicate"] is True
    assert other.get_json()["id"] == first.get_json()["id"]
    conflict = client.post("/submit", json=body | {"task": "b"}, headers={"Idempotency-Key": "x"})
    assert conflict.status_code == 409
