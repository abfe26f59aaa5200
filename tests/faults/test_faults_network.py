"""Scenario 4: real network faults between jobsys and Redis.

Redis runs in a network namespace of its own (see netns.py), reached over one veth
link per path: workers, API, and the suite's own checks. Faults are cut links
(every packet dropped: a black hole, as across a real partition) and random packet
loss, both with nftables; and delay, by a userspace TCP relay that runs inside the
namespace on the workers' and the API's links (`delay_relay.py`; this kernel has no
``sch_netem`` for ``tc netem``). The namespace is created and removed by each
test, even when it fails; the scenarios skip, saying why, where network
namespaces cannot be made.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import report
import requests
from cluster import (
    Cluster,
    Execution,
    Load,
    MakeCluster,
    MakeRedis,
    Submit,
    client_for,
    drain,
    read_executions,
    scaled,
    wait_until,
)
from invariants import Row, check
from netns import RedisNetns, unavailable_reason

from jobsys.local.redis_server import RedisServer, free_port

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
        """Redis's URL on path `link`: through the delay relay where one runs on it."""
        if self.ns.relay is not None and link in self.ns.relay.KEYS:
            return self.ns.relay.url(link)
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


@pytest.fixture
def relayed_redis(net_redis: NetRedis, tmp_path: Path) -> NetRedis:
    """`net_redis` with the delay relay on the workers' and the API's paths (no delay yet)."""
    net_redis.ns.start_relay(net_redis.server.port, tmp_path / "relay", free_port())
    return net_redis  # net_redis's teardown stops the relay with the namespace


def start(net: NetRedis, make_cluster: MakeCluster, workers: int = 3) -> Cluster:
    c = make_cluster(net.url("w"), net.url("a"))
    for _ in range(workers):
        c.start_worker(concurrency=2)
    c.start_api()
    return c


def finish(
    net: NetRedis, c: Cluster, load: Load, scenario: str, faults: str, healed_wall: float
) -> tuple[Row, float]:
    """Wait for the first job completed after the heal, the load's end and the drain;
    check the invariants and record the row (recovery: heal → that first job)."""
    back = wait_until(
        lambda: any(e.ok and e.at >= healed_wall for e in read_executions(c.exec_dir)), 30
    )
    row = settle(net, c, load, scenario, faults)
    row.recovery_s = back if back >= 0 else None
    report.record_row(row)
    return row, back


def settle(net: NetRedis, c: Cluster, load: Load, scenario: str, faults: str) -> Row:
    """Wait for the load's end and the drain, and check the invariants (not recorded)."""
    client = client_for(net.url("c"))
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
    row.extra |= {"statuses": load.statuses(), "drain_s": round(drained, 2)}
    return row


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


# -- delay ---------------------------------------------------------------------------
#
# The delay relay (delay_relay.py) sits inside Redis's namespace on the workers' and
# the API's links; each scenario puts the same one-way delay (± jitter) on both paths
# while the load runs, removes it, and measures each phase (before / during / after).
# A round trip through the relay takes twice the one-way delay.


def percentile(values: list[float], q: float) -> float | None:
    """The `q`-th percentile (nearest rank) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def phase_stats(
    subs: list[Submit],
    first_start: dict[str, float],
    execs: list[Execution],
    span: tuple[float, float],
) -> dict[str, object]:
    """Submits sent in `span` (wall clock): answers, latencies, how soon their jobs started;
    and how many jobs completed per second in `span`."""
    start, end = span
    mine = [s for s in subs if start <= s.sent_at < end]
    to_start = [first_start[s.tag] - s.sent_at for s in mine if s.job_id and s.tag in first_start]
    latency = [s.latency_s for s in mine]
    done = sum(1 for e in execs if e.ok and start <= e.at < end)
    return {
        "seconds": round(end - start, 2),
        "submits": len(mine),
        "statuses": dict(Counter(str(s.status) for s in mine)),
        "submit_p50_s": _r(percentile(latency, 50)),
        "submit_p99_s": _r(percentile(latency, 99)),
        "submit_max_s": _r(max(latency, default=None)),
        "start_p50_s": _r(percentile(to_start, 50)),
        "start_p99_s": _r(percentile(to_start, 99)),
        "completed_per_s": round(done / (end - start), 1) if end > start else None,
    }


def latency_back(
    subs: list[Submit], first_start: dict[str, float], healed: float, threshold_s: float
) -> float | None:
    """Heal → the first submit from which on every accepted job started within
    `threshold_s` of its submit (None when the load ended before that)."""
    after = sorted((s for s in subs if s.sent_at >= healed and s.job_id), key=lambda s: s.sent_at)
    back: float | None = None
    for s in after:
        slow = s.tag not in first_start or first_start[s.tag] - s.sent_at > threshold_s
        if slow:
            back = None
        elif back is None:
            back = s.sent_at - healed
    return back


@dataclass
class DelayRun:
    """A delay scenario's row, the load, and its measured figure."""

    cluster: Cluster
    load: Load
    row: Row
    figure: dict[str, object]
    health: list[tuple[int, float]]
    on: float  # wall clock: delay set
    off: float  # wall clock: delay removed


def delay_scenario(
    net: NetRedis,
    make_cluster: MakeCluster,
    *,
    scenario: str,
    ms: float,
    jitter_ms: float,
    hold_s: float,
    n: int,
    rate: float,
    pre_s: float = 3.0,
) -> DelayRun:
    """Under a steady load: `pre_s` healthy, then `ms` ± `jitter_ms` one-way on the workers'
    and the API's paths for `hold_s` (probing /health), then healthy until the load ends.
    Checks the invariants and records the row and the figure."""
    relay = net.ns.relay
    assert relay is not None, "use the relayed_redis fixture"
    c = start(net, make_cluster)
    load = Load(lambda: c.api_url, n, rate, timeout_s=15).start()
    began = time.time()
    time.sleep(pre_s)
    on = time.time()
    for key in relay.KEYS:
        net.ns.delay(key, ms, jitter_ms)
    health: list[tuple[int, float]] = []
    until = time.monotonic() + hold_s
    while time.monotonic() < until:
        t = time.monotonic()
        try:
            code = requests.get(f"{c.api_url}/health", timeout=10).status_code
        except requests.RequestException:
            code = 0
        health.append((code, time.monotonic() - t))
        time.sleep(max(0.0, min(0.3, until - time.monotonic())))
    before_heal = list(load.accepted().values())
    net.ns.heal()
    off = time.time()
    client = client_for(net.url("c"))
    backlog_s = drain(client, before_heal, timeout_s=90)
    first_done = wait_until(
        lambda: any(e.ok and e.started >= off for e in read_executions(c.exec_dir)), 30
    )
    faults = (
        f"{ms:g}±{jitter_ms:g} ms one-way on the workers' and the API's paths for {hold_s:g} s "
        f"(lease {c.lease_s:g} s)"
    )
    row = settle(net, c, load, scenario, faults)
    row.recovery_s = backlog_s if backlog_s < 90 else None
    report.record_row(row)

    execs = read_executions(c.exec_dir)
    subs = list(load.results)
    first_start: dict[str, float] = {}
    for e in execs:
        first_start[e.tag] = min(first_start.get(e.tag, math.inf), e.started)
    last_sent = max((s.sent_at for s in subs), default=off)
    phases = {
        "before": phase_stats(subs, first_start, execs, (began, on)),
        "during": phase_stats(subs, first_start, execs, (on, off)),
        "after": phase_stats(subs, first_start, execs, (off, max(off, last_sent))),
    }
    base_p99 = phases["before"]["start_p99_s"]
    threshold = max(0.5, 2 * float(base_p99)) if isinstance(base_p99, float) else 0.5
    figure: dict[str, object] = {
        "scenario": scenario,
        "ms": ms,
        "jitter_ms": jitter_ms,
        "hold_s": hold_s,
        "lease_s": c.lease_s,
        "phases": phases,
        "backlog_s": _r(row.recovery_s),
        "first_job_after_heal_s": _r(first_done) if first_done >= 0 else None,
        "latency_back_s": _r(latency_back(subs, first_start, off, threshold)),
        "latency_threshold_s": _r(threshold),
        "health_codes": dict(Counter(str(code) for code, _ in health)),
        "health_slowest_s": _r(max((t for _, t in health), default=None)),
        "dup_lease_lost": row.dup_lease_lost,
        "ambiguous_created": f"{row.ambiguous_created}/{row.ambiguous}",
        "worker_redis_timeouts_logged": c.grep_logs("Redis unreachable"),
        "leases_lost_logged": c.grep_logs("lease lost"),
        "leases_recovered_logged": c.grep_logs("recovered from an expired lease"),
        "relay": relay.stats(),
    }
    report.record_figure("delay", **figure)
    return DelayRun(c, load, row, figure, health, on, off)


def during_delay(run: DelayRun) -> list[Submit]:
    return [s for s in run.load.results if run.on <= s.sent_at < run.off]


@pytest.mark.faults_full
@pytest.mark.parametrize(
    ("ms", "jitter_ms"), [pytest.param(50, 10, id="50ms"), pytest.param(200, 50, id="200ms")]
)
def test_moderate_delay_jobs_keep_flowing(
    relayed_redis: NetRedis, make_cluster: MakeCluster, ms: int, jitter_ms: int
) -> None:
    run = delay_scenario(
        relayed_redis,
        make_cluster,
        scenario=f"4e. {ms} ms delay, workers and API ↔ Redis",
        ms=ms,
        jitter_ms=jitter_ms,
        hold_s=10,
        n=1100,
        rate=40,
    )
    # Round trips stay well under every socket timeout: nothing is refused or lost.
    assert set(run.load.statuses()) == {"202"}, run.load.statuses()
    phases = run.figure["phases"]
    assert isinstance(phases, dict)
    assert phases["during"]["completed_per_s"] > 0, phases  # jobs kept flowing
    assert_health_bounded(run)
    assert run.row.ok, run.row.problems


def test_delay_longer_than_the_socket_timeouts(
    relayed_redis: NetRedis, make_cluster: MakeCluster
) -> None:
    # One-way 1.5 s: a round trip (~3 s) outlasts the workers' 1 s socket timeout and
    # the API's 2 s one, but each message still arrives within the 2 s lease.
    run = delay_scenario(
        relayed_redis,
        make_cluster,
        scenario="4f. delay longer than the Redis socket timeouts",
        ms=1500,
        jitter_ms=200,
        hold_s=scaled(4, 8),
        n=scaled(300, 1100),
        rate=scaled(30, 40),
        pre_s=scaled(2, 3),
    )
    assert_prompt_503s(run)
    assert run.row.ok, run.row.problems


@pytest.mark.faults_full
def test_delay_longer_than_the_lease(relayed_redis: NetRedis, make_cluster: MakeCluster) -> None:
    # One-way 2.5 s: even a heartbeat that gets through arrives after the 2 s lease ran
    # out; jobs are taken over, and a duplicate run is allowed only after a lost lease.
    run = delay_scenario(
        relayed_redis,
        make_cluster,
        scenario="4g. delay longer than the lease",
        ms=2500,
        jitter_ms=200,
        hold_s=8,
        n=1100,
        rate=40,
    )
    assert_prompt_503s(run)
    assert run.row.ok, run.row.problems  # dup (unexplained) = 0: duplicates only after lost leases


def assert_health_bounded(run: DelayRun) -> None:
    """Every /health answered 200 or 503 within its half-second deadline (1.5 s with
    slack for a loaded 2-core machine), however slow the round trip to Redis."""
    assert run.health, "no /health probe during the delay"
    assert all(code in (200, 503) and took < 1.5 for code, took in run.health), run.health


def assert_prompt_503s(run: DelayRun) -> None:
    """While a round trip outlasts the API's socket timeout: every submit is answered,
    202 or a JSON 503, within about that timeout (no hang); /health says 503 within a
    second; the workers time out and retry; jobs run again once the delay is gone."""
    statuses = run.load.statuses()
    assert set(statuses) <= {"202", "503"}, statuses
    during = during_delay(run)
    assert during and any(s.status == 503 for s in during), statuses
    for s in during:
        if s.status == 503:
            assert isinstance(s.body, dict) and s.body["error"] == "store unavailable", s.body
    slowest = max(s.latency_s for s in during)
    assert slowest < 3.0, f"a submit took {slowest:.2f}s during the delay (README: ~2 s)"
    assert all(code == 503 for code, _ in run.health), run.health
    assert_health_bounded(run)
    assert run.cluster.grep_logs("Redis unreachable") > 0, "no worker saw a Redis timeout"
    assert run.figure["first_job_after_heal_s"] is not None, "no job ran after the delay"
