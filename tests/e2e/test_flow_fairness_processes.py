"""Per-key concurrency limits with round-robin between keys, through real worker
processes, checked from the handlers' own start/end records (docs/flow-control.md)."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from jobsys.settings import Settings
from jobsys.store import Store, Submission

from processes import Proc, wait_for


def tenant_jobs(key: str, count: int, sleep_s: float) -> list[Submission]:
    return [
        Submission("tenant", {"key": key, "n": i, "sleep": sleep_s}, concurrency_key=key)
        for i in range(count)
    ]


def most_at_once(records: list[str]) -> dict[str, int]:
    """From "start <key> <n>" / "end <key> <n>" records: the most jobs of each key that
    ran at the same time."""
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    for r in records:
        what, key, _ = r.split()
        running[key] = running.get(key, 0) + (1 if what == "start" else -1)
        most[key] = max(most.get(key, 0), running[key])
    return most


def start_workers(env: dict[str, str], tmp_path: Path, count: int, tag: str) -> list[Proc]:
    return [
        Proc(
            ["worker", "--tasks", "sample_tasks", "--concurrency", "1"],
            env,
            tmp_path / f"{tag}{i}.log",
        )
        for i in range(count)
    ]


def stop(procs: list[Proc]) -> None:
    for p in procs:
        p.signal(signal.SIGTERM)
    for p in procs:
        p.wait(20)
        p.stop()


def test_a_small_key_is_served_while_a_big_one_waits_and_no_key_runs_more_than_its_limit(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis, settings: Settings
) -> None:
    store = Store(settings)
    store.submit_many(tenant_jobs("A", 10_000, 0.02))
    store.submit_many(tenant_jobs("B", 10, 0.02))
    store.submit("echo", 1)  # registers nothing special: a job without a key
    store.flow.set_limits("default", concurrency=2)
    workers = start_workers(env | {"WORKER_POLL_SECONDS": "0.2"}, tmp_path, 4, "w")
    try:
        wait_for(
            lambda: (
                redis_client.lrange("test:tenant", 0, -1).count("end B 9") == 1
                or sum(r.startswith("start A") for r in redis_client.lrange("test:tenant", 0, -1))
                >= 100
            ),
            120,
            what="B's jobs or A's 100th",
        )
        wait_for(
            lambda: (
                sum(r.startswith("start B") for r in redis_client.lrange("test:tenant", 0, -1))
                == 10
            ),
            60,
            what="every B started",
        )
    finally:
        stop(workers)
    records = redis_client.lrange("test:tenant", 0, -1)
    starts = [r for r in records if r.startswith("start")]
    b_last = max(i for i, r in enumerate(starts) if r.startswith("start B"))
    a_before = sum(1 for r in starts[:b_last] if r.startswith("start A"))
    assert a_before < 99, a_before  # every B started before A's 100th
    most = most_at_once(records)
    assert most["A"] <= 2 and most["B"] <= 2, most


def test_kill_9_leaks_no_slot_of_a_concurrency_limit(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis, settings: Settings
) -> None:
    lease_s = 3.0
    wenv = env | {"JOB_LEASE_SECONDS": str(lease_s), "WORKER_POLL_SECONDS": "0.2"}
    store = Store(settings)
    store.submit_many(tenant_jobs("K", 4, 1.0))
    store.flow.set_limits("default", concurrency=1)
    workers = start_workers(wenv, tmp_path, 3, "k")
    try:
        wait_for(lambda: redis_client.llen("test:tenant") >= 1, 60, what="a K job running")
        (running,) = store.list_jobs(status="processing").jobs
        # Kill -9 the worker that runs it (a worker id is <host>:<pid>:<random>).
        pid = int((running.worker or "").split(":")[1])
        victim = next(w for w in workers if w.pid == pid)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        victim.stop()
        workers.remove(victim)
        # No other K job starts while the dead job holds the slot; once its lease has
        # expired it is recovered, the limit is whole again, and all four run.
        wait_for(
            lambda: all(j.status == "completed" for j in store.list_jobs(limit=10).jobs),
            90,
            what="every K job completed",
        )
    finally:
        stop(workers)
    records = redis_client.lrange("test:tenant", 0, -1)
    killed = records[0]  # its handler started, never ended
    assert killed.startswith("start K")
    rest = records[1:]
    assert most_at_once(rest)["K"] <= 1, records
    assert sum(r.startswith("end K") for r in rest) == 4, records
