"""Expiry (docs/flow-control.md): a job not started by its deadline never runs and
ends `expired`, decided inside claim.lua by the Redis clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


def redis_ms(client: redis.Redis) -> int:
    s, us = client.time()
    return int(s) * 1000 + int(us) // 1000


def test_a_job_whose_deadline_passed_a_millisecond_before_a_worker_frees_up_never_starts(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    # One worker busy with a job; behind it a job that must start within 300 ms.
    busy = store.submit("record", {"tag": "busy"})
    (running,) = store.claim("default", "w1", 30, 1)
    assert running.id == busy
    (late,) = store.submit_many([Submission("record", {"tag": "late"}, ttl_s=0.3)])
    deadline = int(redis_client.hget(keys.job(late), "expires_at") or 0)
    assert deadline > 0
    while redis_ms(redis_client) < deadline + 1:  # the worker frees up 1 ms after it
        time.sleep(0.001)
    assert store.complete("default", busy, "w1", running.attempt, '"ok"')
    worker = Worker(settings, store)
    assert worker.run_once() == 0
    job = store.get(late)
    assert job.status == "expired"
    assert job.attempts == 0 and job.started_at is None
    assert job.expired_at and job.expires_at
    assert redis_client.lrange("test:executions", 0, -1) == []
    assert redis_client.zcard(keys.ready("default")) == 0
    assert redis_client.zscore(keys.index("default", "queued"), late) is None
    assert redis_client.zscore(keys.expired_index("default"), late) is not None
    assert redis_client.ttl(keys.job(late)) > 0  # ended: kept as long as a completed job


def test_a_job_started_before_its_deadline_runs_and_its_retries_are_not_cut_short(
    settings: Settings, store: Store
) -> None:
    (job_id,) = store.submit_many([Submission("boom", 1, ttl_s=0.5, max_retries=1)])
    worker = Worker(settings.with_overrides(retry_backoff_s=0), store)
    assert worker.run_once() == 1
    time.sleep(0.6)
    assert worker.run_once() == 1  # the retry runs though the deadline has passed
    assert store.get(job_id).status == "failed"


def test_expiry_over_http_with_expires_at_and_ttl_seconds(
    store: Store, client: FlaskClient, settings: Settings
) -> None:
    soon = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    a = client.post("/submit", json={"task": "echo", "expires_at": soon}).get_json()["id"]
    b = client.post("/submit", json={"task": "echo", "ttl_seconds": 3600}).get_json()["id"]
    # With both, the earlier counts.
    body = {"task": "echo", "ttl_seconds": 3600, "expires_at": soon}
    c = client.post("/submit", json=body).get_json()["id"]
    assert client.get(f"/jobs/{b}").get_json()["expires_at"]
    time.sleep(0.4)
    worker = Worker(settings, store)
    for _ in range(3):  # a claim that pops only expired jobs starts none
        worker.run_once()
    statuses = {i: client.get(f"/jobs/{i}").get_json()["status"] for i in (a, b, c)}
    assert statuses == {a: "expired", b: "completed", c: "expired"}
    listed = client.get("/jobs?status=expired").get_json()["jobs"]
    assert {j["id"] for j in listed} == {a, c}
    listed = client.get("/jobs").get_json()["jobs"]  # every status: expired ones too
    assert {j["id"]: j["status"] for j in listed} == statuses
    # An expired job has ended: it cannot be cancelled.
    assert client.post(f"/jobs/{a}/cancel", content_type="application/json").status_code == 409


def test_bad_expiry_fields_are_400s_naming_the_field(client: FlaskClient) -> None:
    for body, field in (
        ({"task": "echo", "ttl_seconds": 0}, "ttl_seconds"),
        ({"task": "echo", "ttl_seconds": "10"}, "ttl_seconds"),
        ({"task": "echo", "expires_at": "tomorrow"}, "expires_at"),
        ({"task": "echo", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no offset
    ):
        answer = client.post("/submit", json=body)
        assert answer.status_code == 400, body
        assert answer.get_json()["field"] == field
