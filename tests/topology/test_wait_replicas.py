"""REDIS_WAIT_REPLICAS: a 202 means the job reached that many replicas (WAIT after
the enqueue); when they do not acknowledge within REDIS_WAIT_TIMEOUT_SECONDS the
answer is a 503, not a 202 that a failover could turn into a lost job."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from apps import close_app

from jobsys.api.app import create_app
from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings


def start_replica(tmp_path: Path, primary: RedisServer, port: int = 0) -> RedisServer:
    replica = RedisServer(
        tmp_path / "replica",
        port=port,
        appendonly=False,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    raw = redis.Redis(port=replica.port, decode_responses=True)
    deadline = time.monotonic() + 20
    while raw.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
    raw.close()
    return replica


def test_a_submit_waits_for_its_replica_or_is_a_503(tmp_path: Path) -> None:
    primary = RedisServer(
        tmp_path / "primary", appendonly=False, extra_args=["--repl-diskless-sync-delay", "0"]
    ).start()
    replica = start_replica(tmp_path, primary)
    env = {
        "REDIS_URL": primary.url,
        "REDIS_WAIT_REPLICAS": "1",
        "REDIS_WAIT_TIMEOUT_SECONDS": "1.5",
    }
    app = plain = None
    try:
        app = create_app(Settings.from_env(env))
        plain = create_app(Settings.from_env({"REDIS_URL": primary.url}))
        client = app.test_client()
        r = client.post("/submit", json={"task": "t"})
        assert r.status_code == 202, r.get_data(as_text=True)
        on_replica = redis.Redis(port=replica.port, decode_responses=True)
        # Acknowledged by the replica before the 202: it holds the job now.
        first = r.json["id"]
        assert on_replica.hget(f"job:{first}", "status") == "queued"
        on_replica.close()

        port = replica.port
        replica.stop()
        for path, body in [
            ("/submit", {"task": "t"}),
            ("/submit/batch", {"jobs": [{"task": "t"}, {"task": "u"}]}),
            # workflows (docs/workflows.md): enqueue_graph.lua is followed by WAIT too
            ("/submit", {"task": "t", "depends_on": [first]}),
            ("/batches", {"jobs": [{"task": "t"}], "on_complete": {"task": "u"}}),
            ("/workflows", {"steps": [{"name": "a", "task": "t"}]}),
            # flow control: enqueue_flow.lua too
            ("/submit", {"task": "t", "unique_key": "u"}),
            ("/submit", {"task": "t", "concurrency_key": "c"}),
            ("/submit/batch", {"jobs": [{"task": "t", "concurrency_key": "c"}]}),
        ]:
            started = time.monotonic()
            r = client.post(path, json=body)
            assert r.status_code == 503, (path, r.status_code, r.get_data(as_text=True))
            assert r.json["error"] == "store unavailable"
            assert time.monotonic() - started >= 1.5  # it did wait for the replica
        # Without the setting the same submit is a 202 (nobody waits for replicas).
        assert plain.test_client().post("/submit", json={"task": "t"}).status_code == 202

        replica = start_replica(tmp_path, primary, port)
        r = client.post("/submit", json={"task": "t"})
        assert r.status_code == 202, r.get_data(as_text=True)
    finally:
        for made in (app, plain):
            if made is not None:
                close_app(made)
        replica.stop()
        primary.stop()
