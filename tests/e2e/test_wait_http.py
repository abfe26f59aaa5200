"""GET /jobs/<id>?wait= (long-poll) through real HTTP: `jobsys api` (gunicorn, gevent
workers) in a child process; jobs are ended through the Store, as a worker would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from requests import Response

from jobsys import Client
from jobsys.local.redis_server import RedisServer
from jobsys.store import Store

from processes import start_api, stop_gracefully


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """One gevent API process (one worker process: every wait shares it)."""
    proc, url = start_api(redis_server.url, tmp_path / "api.log")
    yield url
    print(proc.output()[-3000:])
    stop_gracefully(proc)


@pytest.fixture
def producer(store: Store) -> Store:
    """The Store that submits and ends jobs (as the API and a worker would)."""
    return store


def _complete(store: Store, job_ids: list[str]) -> None:
    """Claim (a claim takes at most half the waiting jobs) and complete `job_ids`."""
    done: list[str] = []
    while len(done) < len(job_ids):
        claimed = store.claim("default", "w", 30, len(job_ids))
        assert claimed
        store.complete_many("default", "w", [(c.id, c.attempt, '"ok"') for c in claimed])
        done += [c.id for c in claimed]
    assert sorted(done) == sorted(job_ids)


def _wait_for(pool: ThreadPoolExecutor, api: str, ids: list[str]) -> list[Future[Response]]:
    """A request `GET /jobs/<id>?wait=30` for each of `ids`, sent from `pool`."""
    return [
        pool.submit(requests.get, f"{api}/jobs/{i}", params={"wait": "30"}, timeout=40) for i in ids
    ]


def test_waits_answer_when_their_jobs_complete_and_hold_no_thread(
    api: str, producer: Store, redis_server: RedisServer
) -> None:
    """50 requests wait at once on one gevent process: /health still answers at once,
    one connection blocks on Redis for all of them, and each answers `completed` once
    its job completes, long before its 30 s are up."""
    ids = [producer.submit("echo") for _ in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = _wait_for(pool, api, ids)
        time.sleep(1.0)  # the requests are waiting
        assert not any(f.done() for f in futures)
        health = requests.get(f"{api}/health", timeout=5)
        assert health.status_code == 200
        plain = requests.get(f"{api}/jobs/{ids[0]}", timeout=5)
        assert plain.json()["status"] == "queued"
        blocked = [
            c for c in redis.Redis.from_url(redis_server.url).client_list() if c["cmd"] == "xread"
        ]
        assert len(blocked) <= 1, blocked
        started = time.monotonic()
        _complete(producer, ids)
        answers = [f.result() for f in futures]
        elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["status"] for a in answers} == {"completed"}
    assert [a.json()["id"] for a in answers] == ids
    assert elapsed < 20, elapsed  # answered by the completion, not by the 30 s timeout


def test_a_wait_answers_the_current_state_when_time_is_up(api: str, producer: Store) -> None:
    job_id = producer.submit("echo")
    started = time.monotonic()
    r = requests.get(f"{api}/jobs/{job_id}", params={"wait": "1.5"}, timeout=10)
    assert time.monotonic() - started >= 1.5
    assert (r.status_code, r.json()["status"]) == (200, "queued")


def test_a_finished_job_answers_at_once_and_wait_0_is_a_plain_read(
    api: str, producer: Store
) -> None:
    job_id = producer.submit("echo")
    assert (
        requests.get(f"{api}/jobs/{job_id}", params={"wait": "0"}, timeout=5).json()["status"]
        == "queued"
    )
    _complete(producer, [job_id])
    r = requests.get(f"{api}/jobs/{job_id}", params={"wait": "60"}, timeout=5)
    assert r.json()["status"] == "completed"


def test_a_cancel_and_a_failure_end_a_wait(api: str, producer: Store) -> None:
    cancelled, failed = producer.submit("echo"), producer.submit("echo", max_retries=0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        waits = {
            i: pool.submit(requests.get, f"{api}/jobs/{i}", params={"wait": "30"}, timeout=40)
            for i in (cancelled, failed)
        }
        time.sleep(0.5)
        producer.cancel(cancelled)
        claimed = producer.claim("default", "w", 30, 1)
        assert [c.id for c in claimed] == [failed]
        assert producer.fail("default", failed, "w", claimed[0].attempt, "boom", 0) == "dead"
        assert waits[cancelled].result().json()["status"] == "cancelled"
        assert waits[failed].result().json()["status"] == "failed"


@pytest.mark.parametrize("wait", ["61", "-1", "abc", "nan", "inf"])
def test_a_wait_outside_0_to_60_is_a_400_naming_the_field(
    api: str, producer: Store, wait: str
) -> None:
    job_id = producer.submit("echo")
    r = requests.get(f"{api}/jobs/{job_id}", params={"wait": wait}, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "wait"


def test_client_wait_uses_the_long_poll(api: str, producer: Store) -> None:
    """Client.wait sends ?wait= and returns the completed job."""
    job_id = producer.submit("echo")
    result: dict[str, object] = {}

    def follow() -> None:
        with Client(api) as client:
            result.update(client.wait(job_id, timeout_s=30))

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(1.0)
    assert t.is_alive()
    _complete(producer, [job_id])
    t.join(20)
    assert result["status"] == "completed"


def test_more_requests_than_connections_wait_for_one_instead_of_failing(
    redis_server: RedisServer, producer: Store, tmp_path: Path
) -> None:
    """With REDIS_MAX_CONNECTIONS=4, 150 requests waiting at once all answer
    `completed` (a request that finds every connection busy waits for one; redis-py's
    own pool refused the 101st with "Too many connections", a 503), and the API
    process never holds more than 4 connections to Redis (and its health probe's)."""
    client = redis.Redis.from_url(redis_server.url)
    before = [c["name"] for c in client.client_list()].count("jobsys")
    proc, api = start_api(redis_server.url, tmp_path / "api.log", {"REDIS_MAX_CONNECTIONS": "4"})
    try:
        ids = [producer.submit("echo") for _ in range(150)]
        with ThreadPoolExecutor(max_workers=150) as pool:
            futures = _wait_for(pool, api, ids)
            time.sleep(1.0)  # the requests are waiting
            during = [c["name"] for c in client.client_list()].count("jobsys")
            _complete(producer, ids)
            answers = [f.result() for f in futures]
    finally:
        print(proc.output()[-3000:])
        stop_gracefully(proc)
    assert [a.status_code for a in answers] == [200] * 150, {a.text for a in answers}
    assert {a.json()["status"] for a in answers} == {"completed"}
    # The tests' own Store names its connections "jobsys" too: counted in `before`.
    assert during - before <= 4 + 1, (before, during)
