"""Idempotent submits (the Idempotency-Key header), against a real Redis."""

from __future__ import annotations

import time

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import keys


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.with_overrides(idempotency_ttl_s=1)


def jobs_in_redis(r: redis.Redis) -> int:
    return len(list(r.scan_iter(match=keys.job("*"))))


def test_the_same_key_and_body_return_the_first_job(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    body = {"task": "charge", "payload": {"order": 7, "amount": 100}}
    first = client.post("/submit", json=body, headers={"Idempotency-Key": "order-7"})
    assert first.status_code == 202
    again = client.post(
        "/submit",
        json={"payload": {"amount": 100, "order": 7}, "task": "charge"},  # same, reordered
        headers={"Idempotency-Key": "order-7"},
    )
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json | {"replayed": True}
    assert jobs_in_redis(redis_client) == 1


def test_the_same_key_with_another_body_is_409_and_writes_nothing(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.post("/submit", json={"task": "a"}, headers={"Idempotency-Key": "k1"})
    r = client.post("/submit", json={"task": "b"}, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 409
    assert r.json["field"] == "Idempotency-Key"
    assert "different request" in r.json["detail"]
    assert jobs_in_redis(redis_client) == 1


def test_keys_expire_after_the_configured_window(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    headers = {"Idempotency-Key": "short-lived"}
    first = client.post("/submit", json={"task": "a"}, headers=headers).json["id"]
    time.sleep(1.2)  # IDEMPOTENCY_TTL_SECONDS=1 in this app
    second = client.post("/submit", json={"task": "a"}, headers=headers)
    assert second.status_code == 202
    assert second.json["id"] != first
    assert jobs_in_redis(redis_client) == 2


def test_requests_without_a_key_are_never_deduplicated(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    ids = {client.post("/submit", json={"task": "a"}).json["id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_batch_is_idempotent_too(client: FlaskClient, redis_client: redis.Redis) -> None:
    body = {"jobs": [{"task": "a"}, {"task": "b", "payload": 2}]}
    headers = {"Idempotency-Key": "batch-1"}
    first = client.post("/submit/batch", json=body, headers=headers)
    assert first.status_code == 202
    again = client.post("/submit/batch", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json["ids"] == first.json["ids"]
    assert again.json["replayed"] is True
    assert jobs_in_redis(redis_client) == 2
    # The same key on the single-job endpoint is another request: a conflict.
    assert client.post("/submit", json={"task": "a"}, headers=headers).status_code == 409


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ünï"])
def test_a_bad_key_is_400(client: FlaskClient, redis_client: redis.Redis, key: str) -> None:
    r = client.post("/submit", json={"task": "a"}, headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert r.json["field"] == "Idempotency-Key"
    assert redis_client.dbsize() == 0
