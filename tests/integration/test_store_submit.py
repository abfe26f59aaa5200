"""The submit paths of `Store`: one job, many, idempotent; how they reach Redis."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import redis

from jobsys.errors import StoreUnavailable
from jobsys.store import Store, Submission, keys
from jobsys.store.store import new_job_id, new_job_ids


def test_new_job_ids_are_canonical_uuid4_text() -> None:
    ids = [new_job_id() for _ in range(2000)] + new_job_ids(3000) + new_job_ids(1)
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == job_id


def _fields(r: redis.Redis, job_id: str) -> dict[str, str]:
    """A job hash without what differs between two equal submits."""
    fields = r.hgetall(keys.job(job_id))
    for name in ("created_at", "rank", "run_at", "traceparent"):
        fields.pop(name, None)
    return fields


def test_one_job_and_a_batch_of_one_write_the_same_hash(
    store: Store, redis_client: redis.Redis
) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    cases = [
        Submission("t"),
        Submission("t", None, True),
        Submission("t", {"a": [1, "é"]}, priority=7, max_retries=2, timeout_s=2.5),
        Submission("t", 0, delay_s=30.0),
        Submission("t", "x", run_at=run_at, priority=-3),
    ]
    for sub in cases:
        one = store.submit(
            sub.task,
            sub.payload,
            has_payload=sub.has_payload,
            max_retries=sub.max_retries,
            priority=sub.priority,
            delay_s=sub.delay_s,
            run_at=sub.run_at,
            timeout_s=sub.timeout_s,
        )
        [many] = store.submit_many([sub])
        assert _fields(redis_client, one) == _fields(redis_client, many), sub
    # A (task, payload) pair is a job whose None payload means "no payload".
    pair, sub = store.submit_many([("t", None), ("t", {"a": 1})])
    assert "payload" not in redis_client.hgetall(keys.job(pair))
    assert store.get(sub).payload == {"a": 1}


def test_submits_survive_a_flushed_script_cache(store: Store, redis_client: redis.Redis) -> None:
    first = store.submit("echo", 1)
    redis_client.script_flush()  # as after a Redis restart: NOSCRIPT, load, run once
    second = store.submit("echo", 2)
    redis_client.script_flush()
    batch = store.submit_many([("echo", 3), ("echo", 4)])
    redis_client.script_flush()
    ids, replayed = store.submit_idempotent(
        [Submission("echo", 5)], queue="default", key="k", request={"n": 5}
    )
    assert not replayed
    everything = [first, second, *batch, *ids]
    assert [store.get(i).payload for i in everything] == [1, 2, 3, 4, 5]
    # Each job was enqueued exactly once, in order.
    assert redis_client.zrange(keys.ready("default"), 0, -1) == everything
    assert redis_client.hget(keys.metrics("default"), "submitted|echo") == "5"


def test_a_connection_killed_under_the_store_is_replaced(
    store: Store, redis_client: redis.Redis
) -> None:
    store.submit("echo", 1)
    redis_client.client_kill_filter(_type="normal", skipme=True)
    # The first submit on the dead connection may fail (never retried: a script
    # could run twice); the connection is then dropped and the next one works.
    with contextlib.suppress(StoreUnavailable):
        store.submit("echo", 2)
    job_id = store.submit("echo", 3)
    assert store.get(job_id).payload == 3
