"""Webhook subscriptions end to end in one process, in every Redis mode (single,
Sentinel, cluster: JOBSYS_TEST_REDIS): POST/GET/DELETE /webhooks through the app,
jobs ended through the Store as a worker would, the dispatcher's steps
(hook_claim/hook_settle) POSTing to a receiver on loopback (docs/events.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient
from http_servers import Receiver, serving, verify

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.store.slots import queue_slot
from jobsys.webhooks.dispatcher import Dispatcher

#: Two queues in two hash slots (on a cluster of three primaries, two shards).
QUEUES = ("hooks-a", "hooks-b")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that answers every POST 200."""
    server = Receiver([200])
    with serving(server, poll_s=0.05):
        yield server


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.with_overrides(webhook_allowed_hosts=("127.0.0.1",))


def _end(store: Store, queue: str, job_id: str) -> None:
    [claimed] = store.claim(queue, "w", 30, 1)
    assert claimed.id == job_id
    assert store.complete(queue, job_id, "w", claimed.attempt, '"done"')


def test_a_subscription_on_two_queues_delivers_their_ends_until_deleted(
    client: FlaskClient,
    app_settings: Settings,
    store: Store,
    receiver: Receiver,
    redis_client: redis.Redis,
) -> None:
    assert queue_slot(QUEUES[0]) != queue_slot(QUEUES[1])
    ids = [client.post("/submit", json={"task": "t", "queue": q}).json["id"] for q in QUEUES]
    answer = client.post(
        "/webhooks", json={"url": receiver.url, "queues": list(QUEUES), "events": ["completed"]}
    )
    assert answer.status_code == 201, answer.json
    sub = answer.json
    assert sub["queues"] == list(QUEUES) and sub["secret"].startswith("whsec_")
    listed = client.get("/webhooks").json["webhooks"]
    assert [(w["id"], w["url"]) for w in listed] == [(sub["id"], receiver.url)]
    for queue in QUEUES:
        assert redis_client.hget(keys.subscriptions(queue), sub["id"]) == "completed"

    for queue, job_id in zip(QUEUES, ids, strict=True):
        _end(store, queue, job_id)
    dispatcher = Dispatcher(app_settings, store)
    assert dispatcher.run_once() == 2
    assert dispatcher.run_once() == 0  # delivered: nothing due any more
    sent = {json.loads(g["body"])["data"]["id"]: (g["headers"], g["body"]) for g in receiver.got}
    assert sorted(sent) == sorted(ids)
    for job_id in ids:
        headers, body = sent[job_id]
        assert json.loads(body)["type"] == "job.completed"
        assert verify(sub["secret"], headers, body)
        history = client.get(f"/jobs/{job_id}/webhooks").json["deliveries"]
        assert [(d["target"], d["status"]) for d in history] == [(sub["id"], "delivered")]
        assert [a["status"] for a in history[0]["attempts"]] == [200]
        assert history[0]["id"] == headers["webhook-id"]

    assert client.delete(f"/webhooks/{sub['id']}", headers=JSON).status_code == 204
    assert client.get("/webhooks").json["webhooks"] == []
    for queue in QUEUES:
        assert redis_client.hlen(keys.subscriptions(queue)) == 0
    assert client.delete(f"/webhooks/{sub['id']}", headers=JSON).status_code == 404
    late = client.post("/submit", json={"task": "t", "queue": QUEUES[1]}).json["id"]
    _end(store, QUEUES[1], late)
    assert dispatcher.run_once() == 0  # no subscription: no delivery
    assert client.get(f"/jobs/{late}/webhooks").json["deliveries"] == []
    assert len(receiver.got) == 2


def test_a_subscription_written_half_way_is_listed_and_deleted_whole(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver
) -> None:
    """As a POST /webhooks cut short on a cluster leaves it (docs/events.md): the record
    and one of its two queues written. GET lists it; DELETE removes every trace."""
    sub = client.post("/webhooks", json={"url": receiver.url, "queues": list(QUEUES)}).json
    redis_client.hdel(keys.subscriptions(QUEUES[1]), sub["id"])  # the step not made
    assert [w["id"] for w in client.get("/webhooks").json["webhooks"]] == [sub["id"]]
    assert client.delete(f"/webhooks/{sub['id']}", headers=JSON).status_code == 204
    assert client.get("/webhooks").json["webhooks"] == []
    assert redis_client.hlen(keys.subscriptions(QUEUES[0])) == 0
    assert redis_client.exists(keys.webhooks()) == 0
