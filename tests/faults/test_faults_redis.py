"""Scenarios 3 and 5: Redis restarted under load (AOF, SIGTERM and SIGKILL), and Redis full.

Scenario 3 measures what each ``appendfsync`` mode loses when Redis is stopped
cleanly (SIGTERM) or killed (SIGKILL) while jobs are being submitted and run.
Scenario 5 fills Redis to its ``maxmemory``: submits must be refused whole with a
JSON 507, jobs already accepted must still run and settle, and submits must work
again once memory is freed.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest
import report
import requests
from cluster import (
    FULL,
    Load,
    MakeCluster,
    MakeRedis,
    client_for,
    drain,
    read_executions,
    scaled,
    wait_until,
)
from invariants import check

from jobsys.store import keys

pytestmark = pytest.mark.timeout(scaled(150, 900))

FAST_CASES = [("everysec", signal.SIGTERM), ("always", signal.SIGKILL)]
FULL_CASES = [
    ("everysec", signal.SIGTERM),
    ("everysec", signal.SIGKILL),
    ("always", signal.SIGTERM),
    ("always", signal.SIGKILL),
]


@pytest.mark.parametrize(
    ("fsync", "sig"),
    FULL_CASES if FULL else FAST_CASES,
    ids=lambda v: v.name if isinstance(v, signal.Signals) else v,
)
def test_redis_restart_under_load(
    fsync: str, sig: signal.Signals, make_redis: MakeRedis, make_cluster: MakeCluster
) -> None:
    args = ["--appendfsync", fsync]
    server = make_redis("redis", appendonly=True, extra_args=args)
    client = client_for(server.url)
    c = make_cluster(server.url)
    for _ in range(3):
        c.start_worker(concurrency=2)
    c.start_api()
    load = Load(lambda: c.api_url, scaled(300, 1500), scaled(30, 50)).start()
    rng = random.Random(3)
    restarts: list[tuple[float, float]] = []  # (monotonic, wall) of each restart
    api_back: list[float] = []
    workers_back: list[float] = []
    for _ in range(scaled(1, 4)):
        time.sleep(rng.uniform(2.0, 3.0))
        server.stop(sig)
        time.sleep(1.0)  # Redis stays down for a second while the load goes on
        server = make_redis("redis", port=server.port, appendonly=True, extra_args=args)
        up_mono, up_wall = time.monotonic(), time.time()
        restarts.append((up_mono, up_wall))
        # The API serves submits again, and workers complete jobs again.
        api_back.append(
            wait_until(
                lambda t=up_mono: any(
                    s.status == 202 and s.started >= t for s in list(load.results)
                ),
                20,
            )
        )
        workers_back.append(
            wait_until(
                lambda w=up_wall: any(e.ok and e.at >= w for e in read_executions(c.exec_dir)),
                20,
            )
        )
    load.wait(120)
    drain(client, load.accepted().values(), timeout_s=60)
    lossy = sig == signal.SIGKILL and fsync == "everysec"
    row = check(
        client,
        f"3. Redis {sig.name}, appendfsync {fsync}",
        load.accepted(),
        read_executions(c.exec_dir),
        ambiguous=load.ambiguous(),
        refused=load.refused(),
        faults=f"{len(restarts)} x Redis {sig.name} + restart (1 s down)",
        loss_window="the AOF window" if lossy else "",
    )
    row.recovery_s = max([*api_back, *workers_back])
    row.extra |= {
        "statuses": load.statuses(),
        "api_back_s": [round(x, 2) for x in api_back],
        "workers_back_s": [round(x, 2) for x in workers_back],
    }
    report.record_row(row)
    report.record_figure(
        "aof",
        fsync=fsync,
        signal=sig.name,
        restarts=len(restarts),
        accepted=row.accepted,
        lost=row.vanished,
        rolled_back_runs=row.dup_unexplained,
        dup_lease_lost=row.dup_lease_lost,
        api_back_s=max(api_back),
        workers_back_s=max(workers_back),
    )
    assert all(t >= 0 for t in api_back + workers_back), (api_back, workers_back)
    assert not {k for k in load.statuses() if k.startswith(("4", "500"))}, load.statuses()
    assert row.ok, row.problems
    if not lossy:
        assert row.vanished == 0 and row.dup_unexplained == 0


def padded_payload(size: int) -> Any:
    def make(tag: str, rng: random.Random) -> dict[str, Any]:
        return {"tag": tag, "sleep": 0.01, "pad": "x" * size}

    return make


def test_redis_full_refuses_submits_with_507_and_recovers(
    make_redis: MakeRedis, make_cluster: MakeCluster
) -> None:
    maxmemory = 24 * 1024 * 1024
    server = make_redis(
        "redis",
        appendonly=False,
        extra_args=["--maxmemory", str(maxmemory), "--maxmemory-policy", "noeviction"],
    )
    client = client_for(server.url)
    c = make_cluster(server.url)
    for _ in range(2):
        c.start_worker(concurrency=2)
    c.start_api()
    # Ballast (the suite's own keys, not jobsys's) brings Redis to ~1 MiB under its limit.
    ballast = []
    chunk = "b" * (256 * 1024)
    while int(client.info("memory")["used_memory"]) < maxmemory - 1024 * 1024:
        name = f"faults:ballast:{len(ballast)}"
        client.set(name, chunk)
        ballast.append(name)
    # Phase 1: 8 KiB jobs until Redis is full and submits come back 507.
    full = Load(lambda: c.api_url, scaled(400, 1500), 100, prefix="f", payload=padded_payload(8192))
    full.start().wait(120)
    refused = [s for s in full.results if s.status == 507]
    assert refused, f"Redis never filled up: {full.statuses()}"
    for s in refused:
        assert isinstance(s.body, dict) and s.body.get("error") == "store full", s.body
        assert s.body.get("detail")
    accepted_full = full.accepted()
    # Jobs accepted before Redis filled still run and settle (worker scripts allow OOM).
    drained_full = drain(client, accepted_full.values(), timeout_s=60)
    statuses = {client.hget(keys.job(i), "status") for i in accepted_full.values()}
    # Memory is freed: submits must be accepted again.
    freed_at = time.monotonic()
    client.delete(*ballast)

    def accepted_again() -> bool:
        r = requests.post(
            f"{c.api_url}/submit",
            json={"task": "fault.work", "payload": {"tag": "probe"}},
            timeout=5,
        )
        if r.status_code == 202:
            probe_id.append(r.json()["id"])
        return r.status_code == 202

    probe_id: list[str] = []
    recovered = wait_until(accepted_again, 20, 0.1)
    after = Load(lambda: c.api_url, scaled(100, 500), 100, prefix="g").start()
    after.wait(60)
    accepted = {**accepted_full, **after.accepted(), "probe": probe_id[0]}
    drain(client, accepted.values(), timeout_s=60)
    row = check(
        client,
        "5. Redis at maxmemory (noeviction)",
        accepted,
        read_executions(c.exec_dir),
        ambiguous=full.ambiguous() | after.ambiguous(),
        refused=full.refused() | after.refused(),
        faults=f"filled to maxmemory {maxmemory // 2**20} MiB; {len(refused)} submits refused",
    )
    row.recovery_s = recovered
    row.extra |= {
        "phase1": full.statuses(),
        "phase2": after.statuses(),
        "drain_while_full_s": round(drained_full, 2),
        "freed_to_202_s": round(time.monotonic() - freed_at, 2),
    }
    report.record_row(row)
    report.record_figure(
        "maxmemory",
        refused_507=len(refused),
        accepted_while_filling=len(accepted_full),
        settled_while_full=statuses <= {"completed", "failed"},
        freed_to_202_s=round(recovered, 2),
        after_statuses=after.statuses(),
    )
    assert statuses <= {"completed", "failed"}, statuses  # settled while Redis was full
    assert recovered >= 0, "submits were not accepted again after memory was freed"
    assert set(after.statuses()) == {"202"}, after.statuses()
    assert not {k for k in full.statuses() if k not in ("202", "507")}, full.statuses()
    assert row.ok, row.problems
