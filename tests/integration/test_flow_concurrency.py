"""Per-key concurrency limits and round-robin between keys (docs/flow-control.md),
against a real Redis."""

from __future__ import annotations

import time

import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import ORIGIN_EVENT_ID, Store, Submission, keys

import sample_tasks  # noqa: F401  (registers the test handlers)


def jobs(key: str, count: int) -> list[Submission]:
    return [Submission("tenant", {"key": key, "n": i}, concurrency_key=key) for i in range(count)]


def test_a_concurrency_limit_caps_running_jobs_per_key_across_workers(store: Store) -> None:
    store.submit_many([*jobs("a", 6), *jobs("b", 6)])
    store.flow.set_limits("default", concurrency=2)
    leased = []
    for w in range(6):  # six workers claim, nobody finishes
        leased += store.claim("default", f"w{w}", 30, 4)
    by_key: dict[str, int] = {}
    for job in leased:
        key = store.get(job.id).concurrency_key or ""
        by_key[key] = by_key.get(key, 0) + 1
    assert by_key == {"a": 2, "b": 2}
    # One finishes: its slot is free at the next claim.
    done = next(j for j in leased if store.get(j.id).concurrency_key == "a")
    worker = store.get(done.id).worker or ""
    assert store.complete("default", done.id, worker, done.attempt, "null")
    (more,) = store.claim("default", "w9", 30, 4)
    assert store.get(more.id).concurrency_key == "a"


def test_a_task_concurrency_limit_counts_only_that_tasks_jobs(store: Store) -> None:
    store.submit_many(
        [*jobs("a", 3), *[Submission("echo", i, concurrency_key="a") for i in range(3)]]
    )
    store.flow.set_limits("default", task="tenant", concurrency=1)
    leased = []
    for _ in range(4):  # a claim takes at most half of the waiting jobs
        leased += store.claim("default", "w", 30, 10)
    tasks = sorted(j.task for j in leased)
    assert tasks.count("tenant") == 1
    assert tasks.count("echo") == 3


def test_waiting_keys_are_served_round_robin(store: Store) -> None:
    store.submit_many(jobs("a", 10_000))
    store.submit_many(jobs("b", 10))
    store.submit("echo", "plain")  # a job without a key is one more stream
    store.flow.set_limits("default", concurrency=2)
    order: list[str] = []
    while len(order) < 40:
        claimed = store.claim("default", "w", 30, 1)
        if not claimed:  # both keys at their limit: finish the oldest
            running = [j for j in store.list_jobs(status="processing", limit=500).jobs]
            job = running[-1]
            assert store.complete("default", job.id, "w", job.attempts, "null")
            continue
        order.append(store.get(claimed[0].id).concurrency_key or "-")
    b_positions = [i for i, k in enumerate(order) if k == "b"]
    assert len(b_positions) == 10
    assert max(b_positions) < 30  # every b started long before a's 100th


def test_a_new_key_starts_at_the_current_round_not_behind_old_history(store: Store) -> None:
    store.submit_many(jobs("a", 50))
    for _ in range(50):  # a is served entirely
        (job,) = store.claim("default", "w", 30, 1)
        store.complete("default", job.id, "w", job.attempt, "null")
    store.submit_many(jobs("c", 20))
    store.submit_many(jobs("a", 1))  # a's new job is not behind c's 20
    order = []
    for _ in range(21):
        (job,) = store.claim("default", "w", 30, 1)
        order.append(store.get(job.id).concurrency_key)
    assert order.index("a") <= 2


def test_a_dead_workers_slot_comes_back_when_its_lease_expires(
    settings: Settings, store: Store
) -> None:
    store.submit_many(jobs("a", 2))
    store.flow.set_limits("default", concurrency=1)
    assert store.claim("default", "dead-worker", 0.3, 1)  # then it dies: no heartbeat
    assert store.claim("default", "w2", 30, 1) == []
    time.sleep(0.4)
    assert [v for _, v, _ in store.recover("default")] == ["retry"]
    (again,) = store.claim("default", "w2", 30, 1)  # the limit is whole again
    assert store.get(again.id).concurrency_key == "a"


def test_concurrency_key_over_http(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    body = {"task": "tenant", "payload": {"key": "t1", "n": 0}, "concurrency_key": "t1"}
    answer = client.post("/submit", json=body)
    assert answer.status_code == 202
    job = client.get(f"/jobs/{answer.get_json()['id']}").get_json()
    assert job["concurrency_key"] == "t1"
    batch = {"jobs": [{"task": "t", "concurrency_key": "t2"}, {"task": "t"}]}
    assert client.post("/submit/batch", json=batch).status_code == 202
    assert redis_client.hget(keys.fair("default"), "t2")
    first = client.post("/submit", json=body, headers={"Idempotency-Key": "k"})
    again = client.post("/submit", json=body, headers={"Idempotency-Key": "k"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    answer = client.post("/submit", json={"task": "t", "concurrency_key": ""})
    assert answer.status_code == 400


def test_a_keyed_job_keeps_its_other_fields_and_makes_its_events(
    store: Store, redis_client: redis.Redis
) -> None:
    # One job array carries expiry, callback_url and concurrency_key (submission.job_arg):
    # each lands in the hash, and enqueue_flow.lua emits the job's event.
    sub = Submission(
        "tenant", {"key": "t"}, concurrency_key="t", ttl_s=60.0, callback_url="https://x.test/h"
    )
    plain = Submission("tenant", {"key": "u"}, concurrency_key="u")
    ids = store.submit_jobs([sub, plain]).ids
    first = redis_client.hgetall(keys.job(ids[0]))
    assert first["concurrency_key"] == "t" and first["callback_url"] == "https://x.test/h"
    assert "expires_at" in first
    second = redis_client.hgetall(keys.job(ids[1]))
    assert second["concurrency_key"] == "u"
    assert "callback_url" not in second and "expires_at" not in second
    events = store.events.read({"default": ORIGIN_EVENT_ID}, 0)
    assert [(e.type, e.job_id) for e in events] == [("queued", ids[0]), ("queued", ids[1])]
