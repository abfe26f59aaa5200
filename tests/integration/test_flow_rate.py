"""Rate limits and RateLimited (docs/flow-control.md), enforced by claim.lua with
the Redis clock, against a real Redis."""

from __future__ import annotations

import time

import pytest
import redis
from flask.testing import FlaskClient
from flow_helpers import max_in_window

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The handlers find Redis through REDIS_URL, as in a worker process."""
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def test_a_queue_rate_limit_holds_in_every_window(settings: Settings, store: Store) -> None:
    store.submit_many([("echo", i) for i in range(40)])
    store.flow.set_limits("default", rate=(5, 1.0))
    starts: list[int] = []
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        for job in store.claim("default", "w", 30, 3):
            starts.append(job.claimed_ms)
        time.sleep(0.01)
    assert max_in_window(starts, 1000) <= 5
    assert 10 <= len(starts) <= 15  # about 5 per second: the limit, and no more


def test_a_task_rate_limit_leaves_other_tasks_running(settings: Settings, store: Store) -> None:
    store.submit_many([("echo", i) for i in range(10)] + [("record", {"tag": i}) for i in range(3)])
    store.flow.set_limits("default", task="echo", rate=(2, 60))
    claimed = []
    for _ in range(10):
        claimed += [j.task for j in store.claim("default", "w", 30, 5)]
    assert claimed.count("echo") == 2
    assert claimed.count("record") == 3


def test_rate_limited_hands_the_job_back_without_an_attempt_and_holds_the_task(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    (job_id,) = store.submit_many([Submission("throttled", {"tag": "a", "hold": 1.0})])
    other = store.submit("echo", 1)
    worker = Worker(settings, store)
    assert worker.run_once() == 1  # raised RateLimited(1.0)
    job = store.get(job_id)
    assert job.status == "queued" and job.attempts == 0
    assert store.flow.state("default").tasks["throttled"].hold_until_ms
    # The task is held: the other task's job runs, this one does not.
    assert worker.run_once() == 1
    assert store.get(other).status == "completed"
    assert worker.run_once() == 0
    time.sleep(1.05)
    assert worker.run_once() == 1
    job = store.get(job_id)
    assert job.status == "completed" and job.attempts == 1
    runs = [int(x.split(":")[1]) for x in redis_client.lrange("test:throttled", 0, -1)]
    assert runs[1] - runs[0] >= 1000  # by the Redis clock


def test_rate_limited_per_queue_holds_every_task(settings: Settings, store: Store) -> None:
    store.submit_many([Submission("throttled", {"tag": "q", "hold": 30, "per": "queue"})])
    other = store.submit("echo", 1)
    worker = Worker(settings, store)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert store.get(other).status == "queued"
    assert store.flow.state("default").queue.hold_until_ms


def test_limits_over_http(store: Store, client: FlaskClient, redis_client: redis.Redis) -> None:
    store.submit("echo", 1)
    body = {"rate": {"limit": 50, "period_seconds": 10}, "concurrency": 2}
    answer = client.put("/queues/default/limits", json=body)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "name": "default",
        "paused": False,
        "rate": {"limit": 50, "period_seconds": 10.0},
        "concurrency": 2,
        "tasks": {},
    }
    answer = client.put("/queues/default/limits", json={"task": "echo", "concurrency": 1})
    assert answer.get_json()["tasks"] == {"echo": {"rate": None, "concurrency": 1}}
    (queue,) = client.get("/queues").get_json()["queues"]
    assert queue["limits"]["rate"] == {"limit": 50, "period_seconds": 10.0}
    assert client.get("/queues/default/limits").get_json()["tasks"]["echo"]["concurrency"] == 1
    # Absent = removed.
    client.put("/queues/default/limits", json={})
    assert client.get("/queues/default/limits").get_json()["rate"] is None
    assert redis_client.hkeys(keys.flow("default")) == ["conc|echo"]
    assert client.put("/queues/nope/limits", json={}).status_code == 404
    for bad, field in (
        ({"rate": {"limit": 0, "period_seconds": 1}}, "rate.limit"),
        ({"rate": {"limit": 1}}, "rate.period_seconds"),
        ({"concurrency": 0}, "concurrency"),
        ({"speed": 1}, "speed"),
    ):
        answer = client.put("/queues/default/limits", json=bad)
        assert answer.status_code == 400, bad
        assert answer.get_json()["field"] == field, bad


def test_metrics_count_the_jobs_each_rule_held_back(store: Store, client: FlaskClient) -> None:
    store.submit_many([("echo", i) for i in range(4)])
    store.flow.set_limits("default", rate=(1, 60))
    for _ in range(3):
        store.claim("default", "w", 30, 2)
    store.flow.set_paused("default", True)
    store.claim("default", "w", 30, 2)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'jobsys_flow_held_back_total{queue="default",rule="rate"} 4.0' in text
    assert 'jobsys_flow_held_back_total{queue="default",rule="paused"} 2.0' in text
    assert 'jobsys_queue_paused{queue="default"} 1.0' in text
