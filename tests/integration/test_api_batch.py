"""POST /submit/batch through Flask's test client, against a real private Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.api.validation import MAX_BATCH_JOBS
from jobsys.store import Store, keys


def post(client: FlaskClient, body: Any) -> Any:
    return client.post("/submit/batch", json=body)


def test_a_batch_is_queued_with_one_id_per_job_in_order(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    jobs = [{"task": "echo", "payload": i} for i in range(5)] + [{"task": "bare"}]
    r = post(client, {"jobs": jobs})
    assert r.status_code == 202
    body = r.json
    assert body["status"] == "queued"
    assert body["count"] == 6
    ids = body["ids"]
    assert len(set(ids)) == 6
    assert [store.get(i).payload for i in ids[:5]] == [0, 1, 2, 3, 4]
    assert "payload" not in store.get(ids[5]).to_api()
    # FIFO: the queue holds them in the order given.
    assert redis_client.zrange(keys.ready("default"), 0, -1) == ids


def test_an_explicit_null_payload_is_kept(client: FlaskClient, store: Store) -> None:
    ids = post(client, {"jobs": [{"task": "a", "payload": None}]}).json["ids"]
    assert store.get(ids[0]).to_api()["payload"] is None


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"jobs": []}, "jobs", "at least 1 job"),
        ({"jobs": {"task": "a"}}, "jobs", "must be an array"),
        ({"jobs": [{"task": "ok"}, {"task": ""}]}, "jobs.1.task", "must not be empty"),
        ({"jobs": [{"task": "ok"}, "x"]}, "jobs.1", "must be a JSON object"),
        ({"jobs": [{"task": "ok", "delay": 1}]}, "jobs.0.delay", "allowed: task, payload"),
        ({"jobs": [{"task": "a\x00b"}]}, "jobs.0.task", "printable"),
        ({"jobs": [{"task": "a"}], "job": []}, "job", "allowed: queue, jobs"),
        ({}, "jobs", "is required"),
        ([{"task": "a"}], "body", "must be a JSON object"),
    ],
)
def test_a_bad_batch_is_rejected_whole_naming_the_field(
    client: FlaskClient, redis_client: redis.Redis, body: Any, field: str, rule: str
) -> None:
    r = post(client, body)
    assert r.status_code == 400, r.json
    assert r.json["field"] == field
    assert rule in r.json["detail"]
    assert redis_client.dbsize() == 0


def test_the_job_limit_is_enforced(client: FlaskClient, redis_client: redis.Redis) -> None:
    r = post(client, {"jobs": [{"task": "a"}] * (MAX_BATCH_JOBS + 1)})
    assert r.status_code == 400
    assert f"at most {MAX_BATCH_JOBS} jobs" in r.json["detail"]
    assert redis_client.dbsize() == 0
    assert post(client, {"jobs": [{"task": "a"}] * MAX_BATCH_JOBS}).status_code == 202


def test_a_batch_body_may_exceed_the_single_submit_limit(client: FlaskClient) -> None:
    big = "x" * 1000
    r = post(client, {"jobs": [{"task": "a", "payload": big}] * 2000})  # ~2 MiB
    assert r.status_code == 202
    assert r.json["count"] == 2000


def test_a_body_over_16_mib_is_413(client: FlaskClient, redis_client: redis.Redis) -> None:
    big = "x" * 1_000_000
    r = post(client, {"jobs": [{"task": "a", "payload": big}] * 17})
    assert r.status_code == 413
    assert "16 MiB" in r.json["detail"]
    assert redis_client.dbsize() == 0


def test_a_batch_needs_json(client: FlaskClient) -> None:
    r = client.post("/submit/batch", data='{"jobs": []}', content_type="text/plain")
    assert r.status_code == 415


def test_the_openapi_document_describes_the_batch_endpoint(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    op = doc["paths"]["/submit/batch"]["post"]
    assert set(op["responses"]) >= {"202", "400", "413", "415", "503", "507"}
    assert doc["components"]["schemas"]["BatchRequest"]["properties"]["jobs"]["maxItems"] == (
        MAX_BATCH_JOBS
    )


def test_a_batch_goes_to_the_queue_it_names(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    r = post(client, {"queue": "bulk", "jobs": [{"task": "a"}, {"task": "b", "priority": 3.0}]})
    assert r.status_code == 202
    assert [store.get(i).queue for i in r.json["ids"]] == ["bulk", "bulk"]
    assert redis_client.zcard(keys.ready("bulk")) == 2
    r = post(client, {"jobs": [{"task": "a", "queue": "other"}]})
    assert r.status_code == 400
    assert r.json["field"] == "jobs.0.queue"


def test_a_plain_batch_with_an_idempotency_key_is_queued_once(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    body = {"jobs": [{"task": "a", "payload": 1}, {"task": "b"}]}
    headers = {"Idempotency-Key": "k1"}
    first = client.post("/submit/batch", json=body, headers=headers)
    again = client.post("/submit/batch", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["ids"] == first.json["ids"] and again.json["replayed"] is True
    assert redis_client.zcard(keys.ready("default")) == 2
