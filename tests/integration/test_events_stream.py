"""Every state change appends its event to the queue's stream, in the same script
(docs/events.md): what a reader of the stream sees for each transition."""

from __future__ import annotations

import redis

from jobsys.settings import Settings
from jobsys.store import ORIGIN_EVENT_ID, Store, Submission, keys


def _events(store: Store, queue: str = "default") -> list[tuple[str, str, dict[str, str]]]:
    return [
        (e.type, e.job_id, dict(e.fields)) for e in store.events.read({queue: ORIGIN_EVENT_ID}, 0)
    ]


def test_a_job_that_completes(store: Store) -> None:
    job_id = store.submit("echo")
    claimed = store.claim("default", "w", 30, 1)[0]
    assert store.progress("default", job_id, "w", claimed.attempt, 0.5, "half")
    assert store.complete("default", job_id, "w", claimed.attempt, "1")
    assert _events(store) == [
        ("queued", job_id, {}),
        ("started", job_id, {"attempt": "1"}),
        ("progress", job_id, {"attempt": "1", "progress": "0.5"}),
        ("completed", job_id, {"attempt": "1"}),
    ]


def test_a_job_that_fails_is_retried_then_dead_lettered_then_replayed(store: Store) -> None:
    job_id = store.submit("echo", max_retries=1)
    for attempt in (1, 2):
        claimed = store.claim("default", "w", 30, 1)[0]
        assert claimed.attempt == attempt
        store.fail("default", job_id, "w", attempt, "boom", 0)
    assert store.retry_dead([job_id]).count == 1
    assert [(t, f.get("attempt")) for t, _, f in _events(store)] == [
        ("queued", None),
        ("started", "1"),
        ("retried", "1"),
        ("started", "2"),
        ("failed", "2"),
        ("dead_lettered", "2"),
        ("queued", None),
    ]


def test_scheduled_then_due_then_cancelled(store: Store, redis_client: redis.Redis) -> None:
    later = store.submit("echo", delay_s=0.05)
    waiting = store.submit("echo", queue="other")
    store.cancel(waiting)
    redis_client.zadd(keys.scheduled("default"), {later: 0})  # due now
    assert store.claim("default", "w", 30, 1)[0].id == later
    assert [t for t, _, _ in _events(store)] == ["scheduled", "queued", "started"]
    assert [t for t, _, _ in _events(store, "other")] == ["queued", "cancelled"]


def test_a_lost_lease_is_retried_by_recover(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo")
    store.claim("default", "w", 0, 1)
    assert store.recover("default") == [(job_id, "retry", "echo")]
    assert [t for t, _, _ in _events(store)] == ["queued", "started", "retried"]


def test_the_stream_is_bounded(settings: Settings, redis_client: redis.Redis) -> None:
    small = Store(settings.with_overrides(events_max_len=100))
    try:
        small.submit_many([("echo", i) for i in range(2000)])
        for _ in range(5):
            small.submit_many([("echo", i) for i in range(200)])
    finally:
        small.close()
    # MAXLEN ~ trims whole nodes: the stream stays near the cap, never near 3,000.
    assert redis_client.xlen(keys.events("default")) < 400


def test_a_queue_with_webhook_deliveries_to_make_is_not_dropped(
    store: Store, redis_client: redis.Redis
) -> None:
    """The outbox is written by the script that ends the job; a queue whose outbox
    still holds a delivery is not empty (drop_queue would orphan it)."""
    sub = Submission("t", callback_url="https://hooks.example/x")
    job_id = store.submit_jobs([sub], queue="hooked").ids[0]
    claimed = store.claim("hooked", "w", 30, 1)[0]
    assert store.complete("hooked", job_id, "w", claimed.attempt, "1")
    due = redis_client.zrange(keys.outbox_due("hooked"), 0, -1)
    assert [d.split(".")[0] for d in due] == [job_id]
    assert redis_client.hget(keys.job(job_id), "webhooks") == due[0]
    redis_client.delete(keys.job(job_id))  # as when its retention ends
    assert store.drop_queue("hooked") == "not_empty"
    redis_client.delete(keys.outbox_due("hooked"), keys.outbox("hooked"))
    assert store.drop_queue("hooked") == "dropped"
