"""The per-queue status indexes: every transition keeps each job in exactly the
index of its status; terminal indexes are pruned as their jobs expire."""

from __future__ import annotations

import time

import redis

from jobsys.schedules import Schedule
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.store.schedules import ScheduleStore

QUEUES = ("default", "other")


def index_ids(client: redis.Redis, queue: str, status: str) -> list[str]:
    """The ids in one status index: a ZSET (oldest first), or the completed LIST
    (newest first), whose elements are binary: `client` returns bytes."""
    key = keys.index(queue, status)
    if status == keys.LIST_INDEXED_STATUS:
        return [keys.completed_entry(e)[1] for e in client.lrange(key, 0, -1)]
    return [m.decode() for m in client.zrange(key, 0, -1)]


def indexed_in(client: redis.Redis, job_id: str) -> list[str]:
    """Every (status) index of every queue that holds `job_id` (as often as it does)."""
    return [
        status if q == "default" else f"{q}:{status}"
        for q in QUEUES
        for status in keys.INDEXED_STATUSES
        for held in index_ids(client, q, status)
        if held == job_id
    ]


def assert_indexed(client: redis.Redis, store: Store, job_id: str, status: str) -> None:
    assert store.get(job_id).status == status
    assert indexed_in(client, job_id) == [status]


def test_every_transition_moves_the_job_to_the_index_of_its_status(
    store: Store, raw_redis: redis.Redis
) -> None:
    c = raw_redis
    job = store.submit("t", max_retries=5)
    assert_indexed(c, store, job, "queued")
    [claimed] = store.claim("default", "w", 30, 1)
    assert_indexed(c, store, job, "processing")
    assert store.fail("default", job, "w", claimed.attempt, "err", 0) == "retry"  # to ready
    assert_indexed(c, store, job, "queued")
    [claimed] = store.claim("default", "w", 30, 1)
    assert store.fail("default", job, "w", claimed.attempt, "err", 0.05) == "retry"  # backoff
    assert_indexed(c, store, job, "queued")
    time.sleep(0.06)
    [claimed] = store.claim("default", "w", 30, 1)
    assert_indexed(c, store, job, "processing")
    assert store.release("default", job, "w", claimed.attempt)
    assert_indexed(c, store, job, "queued")
    store.claim("default", "w", 0.01, 1)
    time.sleep(0.02)
    assert store.recover("default") == [(job, "retry", "t")]
    assert_indexed(c, store, job, "queued")
    [claimed] = store.claim("default", "w", 30, 1)
    assert store.complete("default", job, "w", claimed.attempt, "1")
    assert_indexed(c, store, job, "completed")


def test_delayed_cancelled_and_dead_jobs_are_indexed(store: Store, raw_redis: redis.Redis) -> None:
    c = raw_redis
    delayed = store.submit("t", delay_s=0.05, queue="other")
    assert indexed_in(c, delayed) == ["other:scheduled"]
    far = store.submit("t", delay_s=60, queue="other")
    time.sleep(0.06)
    store.claim("other", "w", 30, 1)  # promotes `delayed` to queued, then claims it
    assert indexed_in(c, delayed) == ["other:processing"]
    store.cancel(far)
    assert indexed_in(c, far) == ["other:cancelled"]

    waiting = store.submit("t")
    store.cancel(waiting)
    assert_indexed(c, store, waiting, "cancelled")

    running = store.submit("t")
    [claimed] = store.claim("default", "w", 30, 1)
    store.cancel(running)
    assert_indexed(c, store, running, "processing")  # only requested
    store.complete("default", running, "w", claimed.attempt, "1")
    assert_indexed(c, store, running, "cancelled")

    dead = store.submit("t", max_retries=0)
    [claimed] = store.claim("default", "w", 30, 1)
    assert store.fail("default", dead, "w", claimed.attempt, "boom", 0) == "dead"
    assert_indexed(c, store, dead, "failed")
    assert store.retry_dead([dead]).count == 1
    assert_indexed(c, store, dead, "queued")
    [claimed] = store.claim("default", "w", 0.01, 1)
    time.sleep(0.02)
    assert store.recover("default") == [(dead, "dead", "t")]  # a lost last attempt
    assert_indexed(c, store, dead, "failed")
    assert store.purge_dead([dead]).count == 1
    assert indexed_in(c, dead) == []


def test_a_periodic_tick_indexes_its_job(
    store: Store, redis_client: redis.Redis, raw_redis: redis.Redis
) -> None:
    schedules = ScheduleStore(store)
    schedule = Schedule("every", "* * * * *", "t", None, "default")
    now = schedules.now()
    assert schedules.tick(schedule, now) == "first"
    assert schedules.tick(schedule, now.replace(year=now.year + 1)) == "enqueued"
    [job_id] = redis_client.zrange(keys.index("default", "queued"), 0, -1)
    assert_indexed(raw_redis, store, job_id, "queued")


def test_terminal_indexes_are_pruned_as_their_jobs_expire(
    settings: Settings, redis_client: redis.Redis, raw_redis: redis.Redis
) -> None:
    store = Store(settings.with_overrides(completed_retention_s=1, failed_retention_s=1))
    try:
        first = store.submit("t")
        [a] = store.claim("default", "w", 30, 1)
        store.complete("default", first, "w", a.attempt, "1")
        doomed = store.submit("t", max_retries=0)
        [b] = store.claim("default", "w", 30, 1)
        store.fail("default", doomed, "w", b.attempt, "boom", 0)
        time.sleep(1.1)
        assert not redis_client.exists(keys.job(first), keys.job(doomed))  # expired
        later = store.submit("t", max_retries=0)
        [c] = store.claim("default", "w", 30, 1)
        store.fail("default", later, "w", c.attempt, "boom", 0)  # prunes failed
        then = store.submit("t")
        [d] = store.claim("default", "w", 30, 1)
        store.complete("default", then, "w", d.attempt, "1")  # prunes completed
        assert index_ids(raw_redis, "default", "completed") == [then]
        assert redis_client.zrange(keys.index("default", "failed"), 0, -1) == [later]
    finally:
        store.close()


def test_a_failed_attempt_is_recorded_in_the_history(store: Store) -> None:
    job = store.submit("t", max_retries=30)
    for i in range(25):
        [claimed] = store.claim("default", f"w{i}", 30, 1)
        store.fail("default", job, f"w{i}", claimed.attempt, f"err {i}", 0)
    history = store.get(job).history
    assert history is not None and len(history) == 20  # the last 20 only
    assert [h["attempt"] for h in history] == list(range(6, 26))
    last = history[-1]
    assert last["worker"] == "w24" and last["error"] == "err 24"
    assert {"started_at", "ended_at"} <= last.keys()
