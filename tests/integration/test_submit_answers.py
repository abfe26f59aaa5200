"""What a submit answers agrees with what Redis did (issue 12, defects 7 and 8):
the status each job got, and the scope of an Idempotency-Key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from redis_modes import CLUSTER_MODE, all_keys

from jobsys.errors import IdempotencyConflict
from jobsys.store import Store, Submission, keys

PAST = "2001-02-03T04:05:06Z"


def _rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _statuses(r: redis.Redis, ids: list[str]) -> list[str]:
    return [r.hget(keys.job(i), "status") for i in ids]


# -- defect 7: the status of the answer is the one the script gave the job --------


def test_the_store_reports_the_status_each_job_got(store: Store, redis_client: redis.Redis) -> None:
    """A past run_at (or none, or delay 0) is `queued` and runs at once; a future one
    (or a delay) is `scheduled`: decided in Redis by its clock, reported as the job
    hash has it."""
    future = datetime.now(UTC) + timedelta(hours=1)
    subs = [
        Submission("past", run_at=datetime(2001, 2, 3, tzinfo=UTC)),
        Submission("delay-0", delay_s=0.0),
        Submission("future", run_at=future),
        Submission("delayed", delay_s=60.0),
        Submission("plain"),
        Submission("past-and-delayed", run_at=datetime(2001, 2, 3, tzinfo=UTC), delay_s=60.0),
    ]
    done = store.submit_jobs(subs, queue="q")
    expected = ["queued", "queued", "scheduled", "scheduled", "queued", "scheduled"]
    assert done.statuses == expected
    assert _statuses(redis_client, done.ids) == expected
    assert not done.replayed
    # The past run_at job runs at once.
    claimed = {c.id for c in store.claim("q", "w1", 30, 10)}
    assert done.ids[0] in claimed and done.ids[2] not in claimed
    # A replay answers as the first request did.
    first = store.submit_jobs(subs[:4], queue="q", key="k", request={"n": 1})
    again = store.submit_jobs(subs[:4], queue="q", key="k", request={"n": 1})
    assert again.replayed and again.ids == first.ids
    assert again.statuses == first.statuses == expected[:4]


# The answer's status is the one the script gave the job (by the Redis clock), not a
# guess from the request (a run_at given used to be answered "scheduled").
def test_a_past_run_at_is_answered_queued(client: FlaskClient, redis_client: redis.Redis) -> None:
    future = _rfc3339(datetime.now(UTC) + timedelta(hours=1))
    for body, status in [
        ({"task": "t", "run_at": PAST}, "queued"),
        ({"task": "t", "delay_seconds": 0}, "queued"),
        ({"task": "t", "run_at": future}, "scheduled"),
        ({"task": "t", "delay_seconds": 60}, "scheduled"),
    ]:
        r = client.post("/submit", json=body)
        assert r.status_code == 202
        assert redis_client.hget(keys.job(r.json["id"]), "status") == status, body
        assert r.json["status"] == status, body
    # A replay answers as the first request did.
    headers = {"Idempotency-Key": "past-run-at"}
    first = client.post("/submit", json={"task": "t", "run_at": PAST}, headers=headers)
    again = client.post("/submit", json={"task": "t", "run_at": PAST}, headers=headers)
    assert again.status_code == 200 and again.json["status"] == first.json["status"] == "queued"


def test_the_job_of_a_past_run_at_shows_queued_over_http(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    """GET /jobs/<id> (the job hash) says `queued` for a past run_at, `scheduled`
    for a future one; delay_seconds 0 is `queued`."""
    future = _rfc3339(datetime.now(UTC) + timedelta(hours=1))
    for body, status in [
        ({"task": "t", "run_at": PAST}, "queued"),
        ({"task": "t", "delay_seconds": 0}, "queued"),
        ({"task": "t", "run_at": future}, "scheduled"),
    ]:
        job_id = client.post("/submit", json=body).json["id"]
        assert client.get(f"/jobs/{job_id}").json["status"] == status, body


# -- defect 8: an Idempotency-Key is one per deployment ---------------------------


def test_the_same_key_for_another_queue_is_409_and_writes_nothing(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    headers = {"Idempotency-Key": "order-8"}
    first = client.post("/submit", json={"task": "charge", "queue": "a"}, headers=headers)
    assert first.status_code == 202
    if CLUSTER_MODE:
        _a_key_is_one_per_queue_on_a_cluster(client, headers, first.json)
        return
    before = sorted(redis_client.keys("*"))
    other = client.post("/submit", json={"task": "charge", "queue": "b"}, headers=headers)
    assert other.status_code == 409
    assert other.json["field"] == "Idempotency-Key"
    assert sorted(redis_client.keys("*")) == before  # nothing written
    # The same key with the same body is still a replay.
    again = client.post("/submit", json={"queue": "a", "task": "charge"}, headers=headers)
    assert again.status_code == 200
    assert again.json == first.json | {"replayed": True}
    # And a batch to another queue with that key is refused too.
    batch = client.post(
        "/submit/batch", json={"queue": "b", "jobs": [{"task": "charge"}]}, headers=headers
    )
    assert batch.status_code == 409
    assert sorted(redis_client.keys("*")) == before


def _a_key_is_one_per_queue_on_a_cluster(
    client: FlaskClient, headers: dict[str, str], first: dict[str, object]
) -> None:
    """On a cluster an Idempotency-Key is one per queue (its record lies in the queue's
    slot, docs/scaling.md): the same key to another queue is a new request, and each
    queue replays its own."""
    other = client.post("/submit", json={"task": "charge", "queue": "b"}, headers=headers)
    assert other.status_code == 202 and other.json["id"] != first["id"]
    for queue, answer in (("a", first), ("b", other.json)):
        again = client.post("/submit", json={"task": "charge", "queue": queue}, headers=headers)
        assert again.status_code == 200
        assert again.json == answer | {"replayed": True}
    changed = client.post("/submit", json={"task": "refund", "queue": "b"}, headers=headers)
    assert changed.status_code == 409 and changed.json["field"] == "Idempotency-Key"


def test_the_fingerprint_covers_the_queue_whatever_the_request_says(
    store: Store, redis_client: redis.Redis
) -> None:
    """The store folds the queue into the fingerprint itself: a caller whose
    `request` leaves the queue out still gets a conflict for another queue."""
    jobs = [Submission("t")]
    first = store.submit_jobs(jobs, queue="a", key="k", request={"task": "t"})
    if CLUSTER_MODE:  # one record per queue (docs/scaling.md): another queue, another request
        other = store.submit_jobs(jobs, queue="b", key="k", request={"task": "t"})
        assert not other.replayed and other.ids != first.ids
        assert redis_client.zcard(keys.ready("b")) == 1
        assert sorted(all_keys(redis_client, "*idem*")) == [
            keys.idempotency(_digest("k"), "a"),
            keys.idempotency(_digest("k"), "b"),
        ]
        return
    with pytest.raises(IdempotencyConflict):
        store.submit_jobs(jobs, queue="b", key="k", request={"task": "t"})
    assert redis_client.zcard(keys.ready("b")) == 0
    again = store.submit_jobs(jobs, queue="a", key="k", request={"task": "t"})
    assert again.replayed and again.ids == first.ids
    # One record per key, whatever the queue.
    assert redis_client.keys("*idem*") == [keys.idempotency(_digest("k"))]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
