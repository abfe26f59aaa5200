"""Expiry (docs/flow-control.md): a job not started by its deadline never runs and
ends `expired`, decided inside claim.lua by the Redis clock."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def drain(settings: Settings, store: Store) -> None:
    """Run jobs until three claims in a row start none (one that pops only expired
    jobs starts none)."""
    worker = Worker(settings.with_overrides(retry_backoff_s=0), store)
    idle = 0
    while idle < 3:
        idle = 0 if worker.run_once() else idle + 1


def executions(r: redis.Redis) -> list[str]:
    return [e.split(":")[0] for e in r.lrange("test:executions", 0, -1)]


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


def test_an_expired_parent_cancels_its_children_but_those_that_run_anyway(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    """An expired job has ended without completing: for the jobs waiting on it it is
    a parent that failed (docs/workflows.md)."""
    (a,) = store.submit_jobs([Submission("record", {"tag": "a"}, ttl_s=0.2)]).ids
    b, c = store.submit_jobs(
        [
            Submission("record", {"tag": "b"}, depends_on=(a,)),
            Submission("record", {"tag": "c"}, depends_on=(a,), on_parent_failure="run"),
        ]
    ).ids
    (d,) = store.submit_jobs([Submission("record", {"tag": "d"}, depends_on=(b,))]).ids
    time.sleep(0.3)
    drain(settings, store)
    assert store.get(a).status == "expired"
    child = store.get(b)
    assert (child.status, child.error) == ("cancelled", f"dependency {a} ended expired")
    assert store.get(d).error == f"dependency {b} ended cancelled"  # and on down the line
    assert store.get(c).status == "completed"
    assert executions(redis_client) == ["c"]
    assert not redis_client.exists(keys.children(a))
    assert redis_client.zcard(keys.index("default", "waiting")) == 0
    # A parent that had expired before the submit counts at once.
    late = store.submit_jobs(
        [
            Submission("record", {"tag": "e"}, depends_on=(a,)),
            Submission("record", {"tag": "f"}, depends_on=(a,), on_parent_failure="run"),
        ]
    )
    assert late.statuses == ["cancelled", "queued"]
    assert store.get(late.ids[0]).error == f"dependency {a} ended expired"


def test_an_expired_parent_cancels_a_child_of_another_queue_at_once(
    settings: Settings, store: Store
) -> None:
    """Under Redis Cluster the child lies in another slot: the claim that expires
    the parent relays its end at once (not at the next lease sweep)."""
    (a,) = store.submit_jobs([Submission("record", {"tag": "a"}, ttl_s=0.2)]).ids
    (b,) = store.submit_jobs(
        [Submission("record", {"tag": "b"}, depends_on=(a,))], queue="other"
    ).ids
    time.sleep(0.3)
    assert store.claim("default", "w1", 30, 10) == []  # it pops `a` and expires it
    child = store.get(b)
    assert (child.status, child.error) == ("cancelled", f"dependency {a} ended expired")


def test_an_expired_job_counts_cancelled_in_its_batch_which_then_finishes(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    batch_id, done, cbs = store.create_batch(
        [Submission("echo", 1, ttl_s=0.2), Submission("echo", 2)],
        on_complete=Submission("callback", {"role": "complete"}),
        on_success=Submission("callback", {"role": "success"}),
    )
    time.sleep(0.3)
    drain(settings, store)
    assert store.get(done.ids[0]).status == "expired"
    info = store.batch(batch_id)
    assert (info.pending, info.completed, info.failed, info.cancelled) == (0, 1, 0, 1)
    assert info.finished_at is not None
    counts = {"id": batch_id, "total": 2, "completed": 1, "failed": 0, "cancelled": 1}
    called: list[Any] = [json.loads(x) for x in redis_client.lrange("test:callbacks", 0, -1)]
    assert called == [{"batch": counts, "payload": {"role": "complete"}}]
    assert store.get(cbs["on_success"]).status == "cancelled"


def test_a_workflow_whose_step_expired_fails_and_its_later_steps_are_cancelled(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    steps = [
        {"name": "a", "task": "echo", "ttl_seconds": 0.2},
        {"name": "b", "task": "echo", "after": ["a"]},
    ]
    created = client.post("/workflows", json={"steps": steps})
    assert created.status_code == 202, created.get_json()
    time.sleep(0.3)
    drain(settings, store)
    view = client.get(f"/workflows/{created.get_json()['id']}").get_json()
    assert view["status"] == "failed"
    assert [s["status"] for s in view["steps"]] == ["expired", "cancelled"]


def test_a_failed_job_retried_by_hand_after_its_deadline_runs(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    """A deadline is one to start by: a retry by hand (attempts back to 0) runs."""
    (job_id,) = store.submit_jobs([Submission("boom", 1, ttl_s=1.0, max_retries=0)]).ids
    drain(settings, store)
    assert store.get(job_id).status == "failed"  # it started within its second
    time.sleep(1.1)
    answer = client.post(f"/jobs/{job_id}/retry", content_type="application/json")
    assert answer.status_code == 200, answer.get_json()
    assert store.get(job_id).expires_at is None
    drain(settings, store)
    job = store.get(job_id)
    assert (job.status, job.attempts, job.replayed) == ("failed", 1, 1)  # it ran again
