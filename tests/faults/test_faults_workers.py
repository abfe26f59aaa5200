"""Scenarios 1 and 2: workers SIGKILLed again and again, and workers SIGSTOPped past their lease.

A steady load of `fault.work` jobs goes through the real API; workers are real
`jobsys worker` processes. After each scenario `invariants.check` compares Redis
with the executions recorded outside it, and the row is printed and recorded.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import report
import requests
from cluster import (
    Cluster,
    Load,
    MakeCluster,
    MakeRedis,
    client_for,
    drain,
    leased_by,
    read_executions,
    scaled,
    wait_until,
)
from invariants import check

from jobsys.store import keys

pytestmark = pytest.mark.timeout(scaled(150, 900))


class RecoveryWatch(threading.Thread):
    """Times how long the jobs a dead or frozen worker held take to leave its hands.

    A job has left them when it is no longer ``processing`` under that worker:
    taken over by another worker, or settled.
    """

    def __init__(self, client: redis.Redis, ids: list[str], pid: int, timeout_s: float) -> None:
        super().__init__(daemon=True)
        self.client, self.ids, self.pid, self.timeout_s = client, ids, pid, timeout_s
        self.start_t = time.monotonic()
        self.elapsed_s: float | None = None

    def run(self) -> None:
        marker = f":{self.pid}:"
        pending = set(self.ids)
        while pending and time.monotonic() - self.start_t < self.timeout_s:
            for job_id in list(pending):
                try:
                    status, worker = self.client.hmget(keys.job(job_id), "status", "worker")
                except redis.RedisError:
                    continue
                if status != "processing" or marker not in (worker or ""):
                    pending.discard(job_id)
            time.sleep(0.05)
        if not pending:
            self.elapsed_s = time.monotonic() - self.start_t


def run_load_with_faults(
    c: Cluster,
    client: redis.Redis,
    load: Load,
    inject: Callable[[random.Random], RecoveryWatch | None],
    *,
    every_s: tuple[float, float],
    max_faults: int,
) -> tuple[int, list[RecoveryWatch]]:
    rng = random.Random(7)
    watches: list[RecoveryWatch] = []
    faults = 0
    time.sleep(1.0)
    while not load.done() and faults < max_faults:
        time.sleep(rng.uniform(*every_s))
        watch = inject(rng)
        faults += 1
        if watch is not None:
            watches.append(watch)
    load.wait(120)
    return faults, watches


def test_sigkill_random_workers_again_and_again(
    make_redis: MakeRedis, make_cluster: MakeCluster
) -> None:
    server = make_redis(appendonly=False)
    c = make_cluster(server.url)
    client = client_for(server.url)
    for _ in range(3):
        c.start_worker(concurrency=2)
    c.start_api()
    load = Load(lambda: c.api_url, scaled(400, 3000), scaled(40, 60)).start()

    def kill(rng: random.Random) -> RecoveryWatch | None:
        victim = rng.choice(c.live_workers())
        held = leased_by(client, victim.pid)
        victim.send(signal.SIGKILL)
        watch = RecoveryWatch(client, held, victim.pid, timeout_s=30)
        watch.start()
        victim.popen.wait(5)
        c.retire(victim)
        c.start_worker(concurrency=2)
        return watch

    faults, watches = run_load_with_faults(
        c, client, load, kill, every_s=(0.5, 1.5), max_faults=scaled(8, 60)
    )
    drained_s = drain(client, load.accepted().values(), timeout_s=60)
    for w in watches:
        w.join(35)
    row = check(
        client,
        "1. SIGKILL random workers",
        load.accepted(),
        read_executions(c.exec_dir),
        ambiguous=load.ambiguous(),
        refused=load.refused(),
        faults=f"{faults} x SIGKILL of a worker (+ a new one each time)",
    )
    times = [w.elapsed_s for w in watches if w.ids]
    row.recovery_s = max((t for t in times if t is not None), default=None)
    row.extra |= {
        "drain_s": round(drained_s, 2),
        "statuses": load.statuses(),
        "jobs_held_by_victims": sum(len(w.ids) for w in watches),
    }
    if None in times:
        row.problem("a killed worker's job was not taken back within 30 s")
        row.stuck += 1
    report.record_row(row)
    assert set(load.statuses()) == {"202"}, load.statuses()
    assert row.ok, row.problems
    assert row.dup_lease_lost <= row.extra["jobs_held_by_victims"]
    # Every job a dead worker held was back within the lease (2 s) plus recovery
    # cadence and a claim, with slack for a loaded 2-core machine.
    assert row.recovery_s is None or row.recovery_s < c.lease_s + 3


def test_sigstop_past_the_lease_then_sigcont_late_result_is_fenced(
    make_redis: MakeRedis, make_cluster: MakeCluster
) -> None:
    server = make_redis(appendonly=False)
    c = make_cluster(server.url)
    client = client_for(server.url)
    frozen = c.start_worker(concurrency=1)
    c.start_api()
    r = requests.post(
        f"{c.api_url}/submit",
        json={"task": "fault.work", "payload": {"tag": "frozen", "sleep": 3}},
        timeout=5,
    )
    assert r.status_code == 202
    job_id = r.json()["id"]
    key = keys.job(job_id)
    assert wait_until(lambda: client.hget(key, "status") == "processing", 15) >= 0
    assert f":{frozen.pid}:" in client.hget(key, "worker")
    other = c.start_worker(concurrency=1)
    time.sleep(0.5)  # mid-handler, and the other worker is up and idle
    frozen.send(signal.SIGSTOP)
    watch = RecoveryWatch(client, [job_id], frozen.pid, timeout_s=20)
    watch.start()
    taken = wait_until(lambda: f":{other.pid}:" in (client.hget(key, "worker") or ""), 20)
    assert taken >= 0, "nobody took the frozen worker's job over"
    assert wait_until(lambda: client.hget(key, "status") == "completed", 20) >= 0
    frozen.send(signal.SIGCONT)
    # The frozen worker wakes up, finishes its handler (the side effect happens: at-least-once)
    # and tries to settle attempt 1, which fencing refuses.
    assert wait_until(lambda: len(read_executions(c.exec_dir)) == 2, 15) >= 0
    time.sleep(1.0)
    watch.join(5)
    job = client.hgetall(key)
    row = check(
        client,
        "2. SIGSTOP a worker past its lease, then SIGCONT",
        {"frozen": job_id},
        read_executions(c.exec_dir),
        faults="1 x SIGSTOP for > lease, then SIGCONT",
    )
    row.recovery_s = watch.elapsed_s
    report.record_row(row)
    assert row.ok, row.problems
    assert job["status"] == "completed" and job["attempts"] == "2"
    assert f":{other.pid}:" in job["worker"]
    assert '"attempt":2' in job["result"]  # the late result of attempt 1 was refused
    assert row.dup_lease_lost == 1  # the handler ran twice, once per attempt: counted
    assert frozen.alive()  # the stale worker carries on
    assert c.grep_logs("lease lost") >= 1


@pytest.mark.faults_full
def test_sigstop_storm_under_load(
    make_redis: MakeRedis, make_cluster: MakeCluster, tmp_path: Path
) -> None:
    server = make_redis(appendonly=False)
    c = make_cluster(server.url)
    client = client_for(server.url)
    for _ in range(4):
        c.start_worker(concurrency=2)
    c.start_api()
    load = Load(lambda: c.api_url, 2000, 50).start()
    frozen: list[tuple[float, object]] = []

    def freeze(rng: random.Random) -> RecoveryWatch | None:
        # Thaw the workers frozen long enough ago (past their lease).
        for t, w in list(frozen):
            if time.monotonic() - t > c.lease_s * 2:
                w.send(signal.SIGCONT)  # type: ignore[attr-defined]
                frozen.remove((t, w))
        candidates = [w for w in c.live_workers() if all(w is not f for _, f in frozen)]
        if len(candidates) <= 1:
            return None
        victim = rng.choice(candidates)
        held = leased_by(client, victim.pid)
        victim.send(signal.SIGSTOP)
        frozen.append((time.monotonic(), victim))
        watch = RecoveryWatch(client, held, victim.pid, timeout_s=30)
        watch.start()
        return watch

    faults, watches = run_load_with_faults(
        c, client, load, freeze, every_s=(1.0, 2.0), max_faults=40
    )
    for _, w in frozen:
        w.send(signal.SIGCONT)  # type: ignore[attr-defined]
    drained_s = drain(client, load.accepted().values(), timeout_s=60)
    for w in watches:
        w.join(35)
    time.sleep(2)  # the thawed workers' late results reach Redis (and are refused)
    row = check(
        client,
        "2b. SIGSTOP storm under load",
        load.accepted(),
        read_executions(c.exec_dir),
        ambiguous=load.ambiguous(),
        refused=load.refused(),
        faults=f"{faults} x SIGSTOP for {2 * c.lease_s:g}-{2 * c.lease_s + 2:g} s, then SIGCONT",
    )
    times = [w.elapsed_s for w in watches if w.ids]
    row.recovery_s = max((t for t in times if t is not None), default=None)
    row.extra |= {"drain_s": round(drained_s, 2), "lease_lost_logged": c.grep_logs("lease lost")}
    report.record_row(row)
    assert row.ok, row.problems
