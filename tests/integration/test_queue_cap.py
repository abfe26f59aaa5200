"""MAX_QUEUES: a submit that would create one queue too many is refused, atomically."""

from __future__ import annotations

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.errors import TooManyQueues
from jobsys.settings import Settings
from jobsys.store import Store, keys


def everything(r: redis.Redis) -> dict[str, object]:
    """Every key with its value (a snapshot to compare: nothing written)."""
    out: dict[str, object] = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == "string":
            out[key] = r.get(key)
        elif kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "set":
            out[key] = r.smembers(key)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


def test_the_1001st_queue_is_refused_with_409_naming_queue_and_nothing_is_written(
    client: FlaskClient, store: Store, redis_client: redis.Redis, settings: Settings
) -> None:
    assert settings.max_queues == 1000  # the default
    for i in range(1000):
        store.submit("t", queue=f"q{i}")
    before = everything(redis_client)
    for path, body in [
        ("/submit", {"task": "t", "queue": "one-too-many"}),
        ("/submit/batch", {"queue": "one-too-many", "jobs": [{"task": "t"}, {"task": "u"}]}),
        ("/submit", {"task": "t"}),  # the default queue is new too
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 409, r.get_json()
        answer = r.get_json()
        assert answer["error"] == "too many queues" and answer["field"] == "queue"
        assert "MAX_QUEUES" in answer["detail"] and "1000" in answer["detail"]
    refused = client.post(
        "/submit", json={"task": "t", "queue": "new"}, headers={"Idempotency-Key": "k1"}
    )
    assert refused.status_code == 409 and refused.get_json()["field"] == "queue"
    assert everything(redis_client) == before
    # The queues that exist still take jobs.
    assert client.post("/submit", json={"task": "t", "queue": "q999"}).status_code == 202
    batch = {"queue": "q0", "jobs": [{"task": "t"}]}
    assert client.post("/submit/batch", json=batch).status_code == 202
    assert redis_client.scard(keys.queues()) == 1000


def test_the_store_raises_a_typed_error(settings: Settings) -> None:
    store = Store(settings.with_overrides(max_queues=2))
    try:
        store.submit("t", queue="a")
        store.submit_many([("t", None)], queue="b")
        with pytest.raises(TooManyQueues) as caught:
            store.submit("t", queue="c")
        assert caught.value.queue == "c" and caught.value.limit == 2
        with pytest.raises(TooManyQueues):
            store.submit_jobs([], queue="c", key="k", request={})
        store.submit("t", queue="a")  # an existing queue
    finally:
        store.close()


def test_no_cap_when_max_queues_is_0(settings: Settings) -> None:
    store = Store(settings.with_overrides(max_queues=0))
    try:
        for i in range(5):
            store.submit("t", queue=f"q{i}")
        assert len(store.queue_stats()) == 5
    finally:
        store.close()


def test_an_empty_queue_can_be_dropped_to_make_room(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = Store(settings.with_overrides(max_queues=2))
    try:
        job_id = store.submit("t", queue="a")
        store.submit("t", queue="b")
        assert store.drop_queue("nope") == "unknown"
        assert store.drop_queue("a") == "not_empty"  # a job waits
        claimed = store.claim("a", "w", 30, 1)
        assert store.drop_queue("a") == "not_empty"  # it runs
        store.complete("a", job_id, "w", claimed[0].attempt, "null")
        assert store.drop_queue("a") == "not_empty"  # it is kept (retention)
        redis_client.delete(keys.job(job_id))  # as when its retention ends
        with pytest.raises(TooManyQueues):
            store.submit("t", queue="c")
        assert store.drop_queue("a") == "dropped"
        assert redis_client.smembers(keys.queues()) == {"b"}
        assert not [k for k in redis_client.scan_iter() if "{a}" in k]
        store.submit("t", queue="c")  # room again
        with pytest.raises(TooManyQueues):
            store.submit("t", queue="a")
    finally:
        store.close()
