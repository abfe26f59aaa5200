"""Every state change appends its event to the queue's stream, in the same script
(docs/events.md): what a reader of the stream sees for each transition."""

from __future__ import annotations

import redis

from jobsys.settings import Settings
from jobsys.store import ORIGIN_EVENT_ID, Store, keys


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
