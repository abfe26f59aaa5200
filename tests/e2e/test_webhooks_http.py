"""Webhooks end to end: `jobsys api` and `jobsys webhooks` processes, a receiver on
loopback (allowed by WEBHOOK_ALLOWED_HOSTS), jobs ended through the Store as a
worker would; signatures checked with the standard library only (docs/events.md)."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from http_servers import Receiver, verify

from jobsys.local.redis_server import RedisServer
from jobsys.store import Store

from processes import Proc, start_api, stop_gracefully, wait_for

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ENV = {
    "JOBSYS_WEBHOOK_SECRET": SECRET,
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_BACKOFF_SECONDS": "0.2",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    proc, url = start_api(redis_server.url, tmp_path / "api.log", ENV)
    yield url
    print(proc.output()[-3000:])
    stop_gracefully(proc)


def _dispatcher(redis_server: RedisServer, log: Path) -> Proc:
    return Proc(["webhooks"], {"REDIS_URL": redis_server.url, **ENV}, log)


def _serve(receiver: Receiver) -> None:
    threading.Thread(target=receiver.serve_forever, daemon=True).start()


def _end(store: Store, job_id: str, queue: str = "default") -> None:
    claimed = store.claim(queue, "w", 30, 1)
    assert [c.id for c in claimed] == [job_id]
    assert store.complete(queue, job_id, "w", claimed[0].attempt, '"done"')


def test_a_callback_answered_500_500_200_is_attempted_three_times_with_one_id(
    api: str, store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    receiver = Receiver([500, 500, 200])
    _serve(receiver)
    dispatcher = _dispatcher(redis_server, tmp_path / "webhooks.log")
    try:
        r = requests.post(
            f"{api}/submit", json={"task": "t", "callback_url": receiver.url}, timeout=5
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        _end(store, job_id)
        wait_for(lambda: len(receiver.got) >= 3, 30, what="three attempts")
        time.sleep(1.5)  # no fourth attempt comes
    finally:
        print(dispatcher.output()[-3000:])
        stop_gracefully(dispatcher)
        receiver.shutdown()
        receiver.server_close()
    assert len(receiver.got) == 3
    ids = {g["headers"]["webhook-id"] for g in receiver.got}
    assert len(ids) == 1
    for got in receiver.got:
        assert verify(SECRET, got["headers"], got["body"])
        assert not verify(SECRET.replace("0", "1", 1), got["headers"], got["body"])
    assert len({g["body"] for g in receiver.got}) == 1  # the same body every time
    body = json.loads(receiver.got[0]["body"])
    assert body["type"] == "job.completed"
    assert (body["data"]["id"], body["data"]["status"]) == (job_id, "completed")
    history = requests.get(f"{api}/jobs/{job_id}/webhooks", timeout=5).json()["deliveries"]
    assert [(d["status"], d["target"]) for d in history] == [("delivered", "callback_url")]
    assert [a.get("status") for a in history[0]["attempts"]] == [500, 500, 200]
    assert history[0]["id"] == ids.pop()


def test_a_dispatcher_killed_mid_post_still_delivers(
    api: str, store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    """SIGKILL while the receiver holds the first POST: the lease runs out and a new
    dispatcher sends it again, with the same webhook-id."""
    receiver = Receiver([200], hold_s=3.0)
    _serve(receiver)
    first = _dispatcher(redis_server, tmp_path / "first.log")
    r = requests.post(f"{api}/submit", json={"task": "t", "callback_url": receiver.url}, timeout=5)
    job_id = r.json()["id"]
    _end(store, job_id)
    wait_for(lambda: len(receiver.got) >= 1, 30, what="the first POST")
    first.signal(signal.SIGKILL)
    first.wait(10)
    first.stop()
    second = _dispatcher(redis_server, tmp_path / "second.log")
    try:
        wait_for(lambda: len(receiver.got) >= 2, 30, what="the POST again")

        def delivered() -> bool:
            answer = requests.get(f"{api}/jobs/{job_id}/webhooks", timeout=5).json()
            return [d["status"] for d in answer["deliveries"]] == ["delivered"]

        wait_for(delivered, 15, what="delivered")
    finally:
        print(second.output()[-3000:])
        stop_gracefully(second)
        receiver.shutdown()
        receiver.server_close()
    assert len({g["headers"]["webhook-id"] for g in receiver.got}) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:8080/",
        "https://192.168.1.10/hook",
        "ftp://example.com/",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_a_callback_to_a_private_address_is_a_400_that_writes_nothing(
    api: str, redis_server: RedisServer, url: str
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    before = client.dbsize()
    for path, body in (
        ("/submit", {"task": "t", "callback_url": url}),
        ("/submit/batch", {"jobs": [{"task": "t"}, {"task": "t", "callback_url": url}]}),
    ):
        r = requests.post(f"{api}{path}", json=body, timeout=10)
        assert r.status_code == 400, r.text
        assert "callback_url" in r.json()["field"]
    assert client.dbsize() == before


def test_subscriptions_receive_the_ends_of_their_queues(
    api: str, store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    receiver = Receiver([200])
    _serve(receiver)
    made = requests.post(
        f"{api}/webhooks",
        json={"url": receiver.url, "queues": ["subbed"], "events": ["completed"]},
        timeout=5,
    )
    assert made.status_code == 201, made.text
    sub = made.json()
    assert sub["secret"].startswith("whsec_")
    listed = requests.get(f"{api}/webhooks", timeout=5).json()["webhooks"]
    assert [(s["id"], "secret" in s) for s in listed] == [(sub["id"], False)]
    bad = requests.post(
        f"{api}/webhooks", json={"url": "http://10.1.2.3/", "queues": ["subbed"]}, timeout=5
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "url")
    dispatcher = _dispatcher(redis_server, tmp_path / "webhooks.log")
    try:
        job_id = store.submit("t", queue="subbed")
        other = store.submit("t", queue="elsewhere")
        _end(store, job_id, "subbed")
        _end(store, other, "elsewhere")
        wait_for(lambda: len(receiver.got) >= 1, 30, what="the subscription's POST")
        time.sleep(1.0)
    finally:
        stop_gracefully(dispatcher)
        receiver.shutdown()
        receiver.server_close()
    assert len(receiver.got) == 1
    got = receiver.got[0]
    assert verify(sub["secret"], got["headers"], got["body"])
    assert json.loads(got["body"])["data"]["id"] == job_id
    delete = f"{api}/webhooks/{sub['id']}"
    json_type = {"Content-Type": "application/json"}
    assert requests.delete(delete, headers=json_type, timeout=5).status_code == 204
    assert requests.delete(delete, headers=json_type, timeout=5).status_code == 404
    assert requests.get(f"{api}/webhooks", timeout=5).json()["webhooks"] == []


def test_a_receiver_that_was_down_gets_every_delivery_when_it_is_back(
    api: str, store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Nothing listens at the URL for a while (connections refused, attempts retried
    with backoff); once a receiver listens there, every delivery arrives, once each."""
    down = Receiver([200])
    url = down.url
    port = down.server_address[1]
    down.server_close()  # the port is free: connections are refused
    dispatcher = _dispatcher(redis_server, tmp_path / "webhooks.log")
    up: Receiver | None = None
    try:
        ids = []
        for _ in range(5):
            r = requests.post(f"{api}/submit", json={"task": "t", "callback_url": url}, timeout=5)
            ids.append(r.json()["id"])
        for job_id in ids:
            _end(store, job_id)
        time.sleep(4.0)  # several failed attempts each
        failed = requests.get(f"{api}/jobs/{ids[0]}/webhooks", timeout=5).json()["deliveries"]
        assert failed[0]["status"] == "pending"
        assert len(failed[0]["attempts"]) >= 2
        assert "Connection" in failed[0]["attempts"][0]["error"]
        up = Receiver([200], port=port)
        _serve(up)
        receiver = up
        wait_for(lambda: len(receiver.got) >= 5, 60, what="every delivery")
        time.sleep(1.0)
    finally:
        stop_gracefully(dispatcher)
        if up is not None:
            up.shutdown()
            up.server_close()
    got = sorted(json.loads(g["body"])["data"]["id"] for g in up.got)
    assert got == sorted(ids)
