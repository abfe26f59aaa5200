"""Pausing and resuming a queue (docs/flow-control.md), against a real Redis."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


def test_a_paused_queue_takes_submits_but_starts_nothing_until_resumed(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    store.submit_many([("echo", i) for i in range(1000)])
    answer = client.post("/queues/default/pause", content_type="application/json")
    assert answer.status_code == 200
    assert answer.get_json() == {"name": "default", "paused": True}
    # Submits are still accepted while paused.
    assert client.post("/submit", json={"task": "echo"}).status_code == 202
    worker = Worker(settings, store)
    for _ in range(5):
        assert worker.run_once() == 0
    assert redis_client.zcard(keys.ready("default")) == 1001
    assert redis_client.zcard(keys.index("default", "processing")) == 0
    (queue,) = client.get("/queues").get_json()["queues"]
    assert queue["paused"] is True
    assert queue["depth"] == 1001
    # A new Store (another process, a restart of API or worker) sees the pause: it is in Redis.
    assert Store(settings).flow.paused("default")

    answer = client.post("/queues/default/resume", content_type="application/json")
    assert answer.get_json() == {"name": "default", "paused": False}
    assert redis_client.zcard(keys.wakeup("default")) == 1  # idle workers wake at once
    ran = 0
    while (n := worker.run_once()) > 0:
        ran += n
    assert ran == 1001
    assert client.get("/queues").get_json()["queues"][0]["paused"] is False


def test_running_jobs_of_a_paused_queue_finish(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", 1)
    (job,) = store.claim("default", "w1", 30, 1)
    store.flow.set_paused("default", True)
    assert store.complete("default", job.id, "w1", job.attempt, '"done"')
    assert store.get(job_id).status == "completed"


def test_pausing_one_queue_leaves_the_others_running(settings: Settings, store: Store) -> None:
    store.submit("echo", 1, queue="a")
    store.submit("echo", 2, queue="b")
    store.flow.set_paused("a", True)
    worker = Worker(settings.with_overrides(worker_queues=(("a", 0), ("b", 0))), store)
    assert worker.run_once() == 1
    assert worker.run_once() == 0


def test_pause_and_resume_answer_404_for_an_unknown_or_invalid_queue(
    client: FlaskClient, store: Store
) -> None:
    for path in ("/queues/nope/pause", "/queues/nope/resume", "/queues/a%7Bb%7D/pause"):
        answer = client.post(path, content_type="application/json")
        assert answer.status_code == 404, path
        assert answer.get_json()["error"] == "not found"
