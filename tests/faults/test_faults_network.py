"""Scenario 4: real network faults between jobsys and Redis.

Redis runs in a network namespace of its own (see netns.py), reached over one veth
link per path: workers, API, and the suite's own checks. Faults are cut links
(every packet dropped: a black hole, as across a real partition) and random packet
loss; delay too where the kernel has ``sch_netem``. The namespace is created and
removed by each test, even when it fails; the scenarios skip, saying why, where
network namespaces cannot be made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import report
import requests
from cluster import (
    Cluster,
    Load,
    MakeCluster,
    MakeRedis,
    client_for,
    drain,
    read_executions,
    scaled,
    wait_until,
)
from invariants import Row, check
from netns import RedisNetns, netem_available, unavailable_reason

from jobsys.redis_server import RedisServer, free_port

REASON = unavailable_reason()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=f"no network namespaces here: {REASON}"),
    pytest.mark.timeout(scaled(150, 900)),
]


@dataclass
class NetRedis:
    ns: RedisNetns
    server: RedisServer

    def url(self, link: str) -> str:
        return f"redis://{self.ns.ip(link)}:{self.server.port}/0"


@pytest.fixture
def net_redis(make_redis: MakeRedis, tmp_path: Path) -> Iterator[NetRedis]:
    ns = RedisNetns()
    server: RedisServer | None = None
    try:
        ns.create()
        server = make_redis(
            "redis",
            host=ns.ip("c"),
            port=free_port(),
            binary=ns.launcher(tmp_path),
            appendonly=False,
            extra_args=["--bind", ns.ip("w"), ns.ip("a"), ns.ip("c"), "--protected-mode", "no"],
        )
        yield NetRedis(ns, server)
    finally:
        if server is not None:
            server.kill()
        ns.destroy()


def start(net: NetRedis, make_cluster: MakeCluster, workers: int = 3) -> Cluster:
    c = make_cluster(net.url("w"), net.url("a"))
    for _ in range(workers):
        c.start_worker(concurrency=2)
    c.start_api()
    return c


def finish(
    net: NetRedis, c: Cluster, load: Load, scenario: str, faults: str, healed_wall: float
) -> tuple[Row, float]:
    client = client_for(net.url("c"))
    back = wait_until(
        lambda: any(e.ok and e.at >= healed_wall for e in read_executions(c.exec_dir)), 30
    )
    load.wait(120)
    drained = drain(client, load.accepted().values(), timeout_s=60)
    row = check(
        client,
        scenario,
        load.accepted(),
        read_executions(c.exec_dir),
        ambiguous=load.ambiguous(),
        refused=load.refused(),
        faults=faults,
    )
    row.recovery_s = back if back >= 0 else None
    row.extra |= {"statuses": load.statuses(), "drain_s": round(drained, 2)}
    report.record_row(row)
    return row, back


def test_partition_workers_from_redis_longer_than_the_lease(
    net_redis: NetRedis, make_cluster: MakeCluster
) -> None:
    c = start(net_redis, make_cluster)
    load = Load(lambda: c.api_url, scaled(300, 1500), scaled(30, 50)).start()
    cut_s = 2 * c.lease_s + 1
    rounds = scaled(1, 3)
    for _ in range(rounds):
        time.sleep(2.0)
        net_redis.ns.cut("w")
        time.sleep(cut_s)
        net_redis.ns.heal("w")
        healed = time.time()
    row, back = finish(
        net_redis,
        c,
        load,
        "4a. partition workers ↔ Redis, longer than the lease",
        f"{rounds} x workers cut off for {cut_s:g} s (lease {c.lease_s:g} s)",
        healed,
    )
    assert set(load.statuses()) == {"202"}, load.statuses()  # the API kept its path
    assert back >= 0, "workers did not run jobs again after the partition healed"
    assert row.ok, row.problems


def test_partition_api_from_redis_answers_503_promptly(
    net_redis: NetRedis, make_cluster: MakeCluster
) -> None:
    c = start(net_redis, make_cluster, workers=2)
    load = Load(lambda: c.api_url, scaled(300, 1500), scaled(30, 50), timeout_s=15).start()
    time.sleep(2.0)
    net_redis.ns.cut("a")
    cut_at = time.monotonic()
    health: list[tuple[int, float]] = []
    while time.monotonic() - cut_at < 5.0:
        t = time.monotonic()
        r = requests.get(f"{c.api_url}/health", timeout=10)
        health.append((r.status_code, time.monotonic() - t))
        time.sleep(0.3)
    net_redis.ns.heal("a")
    healed_mono, healed = time.monotonic(), time.time()
    api_back = wait_until(
        lambda: any(s.status == 202 and s.started >= healed_mono for s in list(load.results)), 20
    )
    row, _ = finish(
        net_redis,
        c,
        load,
        "4b. partition API ↔ Redis",
        "API cut off from Redis for 5 s",
        healed,
    )
    during = [s for s in load.results if cut_at <= s.started < healed_mono]
    slowest = max((s.latency_s for s in during), default=0.0)
    report.record_figure(
        "api_partition",
        submits_during_cut=len(during),
        statuses_during_cut={
            str(k): sum(1 for s in during if s.status == k) for k in {s.status for s in during}
        },
        slowest_submit_s=round(slowest, 2),
        slowest_health_s=round(max(h[1] for h in health), 2),
        api_back_s=round(api_back, 2),
    )
    assert during and all(s.status in (202, 503) for s in during), load.statuses()
    assert any(s.status == 503 for s in during)
    for s in during:
        if s.status == 503:
            assert isinstance(s.body, dict) and s.body["error"] == "store unavailable", s.body
    assert slowest < 3.0, f"a submit took {slowest:.2f}s during the partition (README: ~2 s)"
    assert all(code == 503 and took < 1.5 for code, took in health), health
    assert api_back >= 0
    assert row.ok, row.problems


@pytest.mark.faults_full
def test_partition_workers_shorter_than_the_lease(
    net_redis: NetRedis, make_cluster: MakeCluster
) -> None:
    c = start(net_redis, make_cluster)
    load = Load(lambda: c.api_url, 1500, 50).start()
    for _ in range(6):
        time.sleep(2.0)
        net_redis.ns.cut("w")
        time.sleep(0.8)
        net_redis.ns.heal("w")
        healed = time.time()
    row, _ = finish(
        net_redis,
        c,
        load,
        "4c. partition workers ↔ Redis, shorter than the lease",
        f"6 x workers cut off for 0.8 s (lease {c.lease_s:g} s)",
        healed,
    )
    assert row.ok, row.problems


@pytest.mark.faults_full
def test_packet_loss_on_every_path(net_redis: NetRedis, make_cluster: MakeCluster) -> None:
    c = start(net_redis, make_cluster)
    load = Load(lambda: c.api_url, 1500, 50, timeout_s=15).start()
    time.sleep(2.0)
    net_redis.ns.loss("w", 30)
    net_redis.ns.loss("a", 30)
    time.sleep(12.0)
    net_redis.ns.heal()
    healed = time.time()
    row, _ = finish(
        net_redis,
        c,
        load,
        "4d. 30 % packet loss, workers and API ↔ Redis",
        "30 % loss both ways on both paths for 12 s",
        healed,
    )
    assert not {k for k in load.statuses() if k.startswith(("4", "500"))}, load.statuses()
    assert row.ok, row.problems


@pytest.mark.faults_full
@pytest.mark.skipif(not netem_available(), reason="the kernel has no sch_netem (tc netem)")
def test_delay_on_the_workers_path(net_redis: NetRedis, make_cluster: MakeCluster) -> None:
    c = start(net_redis, make_cluster)
    load = Load(lambda: c.api_url, 1000, 40).start()
    time.sleep(2.0)
    net_redis.ns.delay("w", 300, 100)
    time.sleep(10.0)
    net_redis.ns.heal()
    row, _ = finish(
        net_redis,
        c,
        load,
        "4e. 300 ms delay, workers ↔ Redis",
        "300±100 ms delay for 10 s",
        time.time(),
    )
    assert row.ok, row.problems
