"""The store at Redis's limits: out of memory, and script atomicity under it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps import close_app

from jobsys.api import create_app
from jobsys.errors import StoreFull
from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[Store]:
    server = RedisServer(
        tmp_path,
        appendonly=False,
        extra_args=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"],
    ).start()
    store = Store(Settings.from_env({"REDIS_URL": server.url, "SIMULATED_WORK_SECONDS": "0"}))
    yield store
    store.close()
    server.stop()


def test_submits_are_refused_whole_at_maxmemory_and_accepted_jobs_still_run(
    full_store: Store,
) -> None:
    accepted = []
    with pytest.raises(StoreFull):
        for _ in range(10_000):
            accepted.append(full_store.submit("x", "a" * 10_000))
    assert 10 < len(accepted) < 10_000
    r = full_store.redis
    # Nothing half-written: every job hash is queued, and no hash lacks its queue entry.
    assert len(list(r.scan_iter("job:*"))) == len(accepted)
    assert r.zcard(keys.ready("default")) == len(accepted)
    worker = Worker(full_store.settings, full_store)
    while worker.run_once():
        pass
    assert worker.completed == len(accepted)
    assert all(full_store.get(i).status == "completed" for i in accepted)


def test_a_primary_without_its_replicas_is_a_503_and_writes_nothing(tmp_path: Path) -> None:
    """`min-replicas-to-write` and no replica: Redis answers NOREPLICAS (which redis-py
    leaves a plain ResponseError): the API answers 503 JSON, the store writes nothing,
    and reads still work."""
    server = RedisServer(
        tmp_path, appendonly=False, extra_args=["--min-replicas-to-write", "1"]
    ).start()
    app = create_app(Settings.from_env({"REDIS_URL": server.url}))
    try:
        client = app.test_client()
        for path, body in [
            ("/submit", {"task": "t"}),
            ("/submit/batch", {"jobs": [{"task": "t"}]}),
        ]:
            r = client.post(path, json=body)
            assert r.status_code == 503, (path, r.status_code, r.get_data(as_text=True))
            assert r.json["error"] == "store unavailable"
        raw = redis.Redis.from_url(server.url)
        assert not list(raw.scan_iter("job:*"))
        raw.close()
        assert client.get("/jobs").status_code == 200
        assert client.get("/health").status_code == 200
    finally:
        close_app(app)
        server.stop()
