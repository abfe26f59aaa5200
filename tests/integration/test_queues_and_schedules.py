"""Named queues, priorities and delayed jobs against a real Redis (no processes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker
from jobsys.worker.queues import parse_queue_spec


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_a_high_priority_job_runs_before_a_thousand_older_low_ones(
    settings: Settings, store: Store
) -> None:
    low = store.submit_many([Submission("echo", i, priority=-5) for i in range(1000)])
    urgent = store.submit("echo", "now", priority=10)
    normal = store.submit("echo", "normal")
    worker = Worker(settings.with_overrides(worker_prefetch=1), store)
    assert worker.run_once() == 1
    assert store.get(urgent).status == "completed"
    assert store.get(normal).status == "queued"
    worker.run_once()
    assert store.get(normal).status == "completed"
    worker.run_once()
    assert store.get(low[0]).status == "completed"  # FIFO among equals: the oldest first
    assert store.get(low[-1]).status == "queued"
    assert store.get(urgent).to_api()["priority"] == 10


def test_a_delayed_job_is_scheduled_until_due(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", 1, delay_s=0.5)
    job = store.get(job_id).to_api()
    assert job["status"] == "scheduled"
    due = datetime.fromisoformat(job["run_at"])
    worker = Worker(settings, store)
    assert worker.run_once() == 0
    while worker.run_once() == 0:
        time.sleep(0.02)
    ran = datetime.now(UTC)
    assert ran >= due
    assert ran - due < timedelta(seconds=1)
    assert store.get(job_id).status == "completed"


def test_run_at_in_the_past_runs_at_once(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", 1, run_at=datetime.now(UTC) - timedelta(minutes=1))
    assert store.get(job_id).status == "queued"
    assert Worker(settings, store).run_once() == 1


def test_a_scheduled_job_becomes_queued_at_its_rank(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    later = store.submit("echo", "later", run_at=datetime.now(UTC) + timedelta(seconds=0.3))
    store.submit("echo", "after")
    time.sleep(0.35)
    worker = Worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 100)
    assert claimed[0].id == later  # submitted first: its rank is lower
    assert redis_client.zcard(keys.scheduled("default")) == 0


def test_a_worker_serves_its_queues_in_strict_order(settings: Settings, store: Store) -> None:
    low = store.submit("echo", "low", queue="low")
    high = store.submit("echo", "high", queue="high")
    other = store.submit("echo", "other", queue="elsewhere")
    worker = Worker(settings.with_overrides(worker_queues=parse_queue_spec("high,low")), store)
    assert worker.run_once() == 1
    assert store.get(high).status == "completed"
    assert worker.run_once() == 1
    assert store.get(low).status == "completed"
    assert worker.run_once() == 0
    assert store.get(other).status == "queued"  # not a queue this worker serves
    assert store.get(other).queue == "elsewhere"


def test_queue_stats_count_each_queue(settings: Settings, store: Store) -> None:
    store.submit_many([("echo", 1), ("echo", 2), ("echo", 3)], queue="a")
    store.submit("echo", 1, queue="b", delay_s=60)
    store.claim("a", "w", 30, 1)
    stats = {q.name: q.to_api() for q in store.queue_stats()}
    age = stats["a"].pop("oldest_age_seconds")
    assert 0 <= age < 5
    assert stats["a"] == {
        "name": "a",
        "depth": 2,
        "in_flight": 1,
        "scheduled": 0,
        "dead": 0,
        "paused": False,
        "limits": {"rate": None, "concurrency": None, "tasks": {}},
    }
    assert stats["b"] == {
        "name": "b",
        "depth": 0,
        "in_flight": 0,
        "scheduled": 1,
        "dead": 0,
        "oldest_age_seconds": None,
        "paused": False,
        "limits": {"rate": None, "concurrency": None, "tasks": {}},
    }


def test_with_both_run_at_and_a_delay_the_later_counts(store: Store) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=5)
    a = store.get(store.submit("echo", run_at=soon, delay_s=60)).to_api()
    b = store.get(store.submit("echo", run_at=soon + timedelta(hours=1), delay_s=60)).to_api()
    assert datetime.fromisoformat(a["run_at"]) > soon + timedelta(seconds=50)
    gap = datetime.fromisoformat(b["run_at"]) - (soon + timedelta(hours=1))
    assert abs(gap) < timedelta(milliseconds=2)  # run_at is kept to the millisecond
