"""Redis Cluster bench: submits and claims per second on a private cluster of one
and of three shards, with each shard's Redis CPU per job and how the jobs spread.

    .venv/bin/python -m bench.cluster                  # 20,000 jobs, 6 queues, 1 and 3 shards
    .venv/bin/python -m bench.cluster --jobs 5000 --shards 3

Producers (`--procs` processes) submit single jobs with `Store.submit`, round
robin over the queues; then as many consumer processes claim batches of up to 100
(`Store.claim`) and complete them (`Store.complete_many`) until every queue is
empty. On a machine with few cores the clients, not Redis, set the pace: read the
per-shard Redis CPU per job (INFO cpu, user + sys, over the phase, divided by the
jobs that shard handled) and the spread, not only the rates.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from jobsys.settings import Settings
from jobsys.store import Store, keys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_cluster import SLOTS, RedisCluster


def _queues(count: int, shards: int) -> list[str]:
    """`count` queue names spread evenly over `shards` (slots split as the
    cluster's fixture splits them)."""
    per: dict[int, list[str]] = {s: [] for s in range(shards)}
    i = 0
    while sum(len(v) for v in per.values()) < count:
        name = f"bench-{i}"
        shard = min(key_slot(keys.ready(name).encode()) // (SLOTS // shards), shards - 1)
        if len(per[shard]) < count // shards + (1 if shard < count % shards else 0):
            per[shard].append(name)
        i += 1
    return [q for s in sorted(per) for q in per[s]]


def _produce(seeds: str, queues: list[str], count: int, took: Any) -> None:
    store = Store(Settings.from_env({"REDIS_CLUSTER_NODES": seeds}))
    store.submit("noop", queue=queues[0])  # connected, tables built: not timed
    start = time.perf_counter()
    for i in range(1, count):
        store.submit("noop", queue=queues[i % len(queues)])
    took.put(time.perf_counter() - start)
    store.close()


def _consume(seeds: str, queues: list[str], done: Any, took: Any) -> None:
    store = Store(Settings.from_env({"REDIS_CLUSTER_NODES": seeds}))
    start = time.perf_counter()
    idle = 0
    while idle < 2:
        got = 0
        for q in queues:
            claimed = store.claim(q, "bench", 60.0, 100)
            if claimed:
                store.complete_many(q, "bench", [(c.id, c.attempt, "null") for c in claimed])
                got += len(claimed)
        with done.get_lock():
            done.value += got
        idle = idle + 1 if got == 0 else 0
    took.put(time.perf_counter() - start)
    store.close()


def _cpu(cluster: RedisCluster) -> list[float]:
    out = []
    for i in range(cluster.primaries):
        c = cluster.client(i)
        info = c.info("cpu")
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
        c.close()
    return out


def _jobs_per_shard(cluster: RedisCluster) -> list[int]:
    out = []
    for i in range(cluster.primaries):
        c = cluster.client(i)
        n = 0
        for key in c.scan_iter("job:*", count=1000):
            n += 1 if key else 0
        out.append(n)
        c.close()
    return out


def run(shards: int, jobs: int, queues: int, procs: int) -> dict[str, Any]:
    """One cluster of `shards` primaries: the submit phase, then the claim phase."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = RedisCluster(Path(tmp), primaries=shards).start()
        try:
            names = _queues(queues, shards)
            seeds = cluster.seeds
            Store(Settings.from_env({"REDIS_CLUSTER_NODES": seeds})).scripts.load()
            ctx = multiprocessing.get_context("spawn")
            took = ctx.Queue()
            cpu0 = _cpu(cluster)
            ps = [
                ctx.Process(target=_produce, args=(seeds, names, jobs // procs, took))
                for _ in range(procs)
            ]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            # The slowest producer's loop (process start and connection not counted).
            submit_s = max(took.get() for _ in ps)
            cpu1 = _cpu(cluster)
            spread = _jobs_per_shard(cluster)
            done = ctx.Value("q", 0)
            cs = [
                ctx.Process(target=_consume, args=(seeds, names, done, took)) for _ in range(procs)
            ]
            for p in cs:
                p.start()
            for p in cs:
                p.join()
            claim_s = max(took.get() for _ in cs)
            cpu2 = _cpu(cluster)
            total = jobs // procs * procs
            return {
                "shards": shards,
                "jobs": total,
                "submits_per_s": total / submit_s,
                "claims_per_s": done.value / claim_s,
                "spread": spread,
                "submit_cpu_us_per_job": [
                    (b - a) * 1e6 / max(n, 1) for a, b, n in zip(cpu0, cpu1, spread, strict=True)
                ],
                "claim_cpu_us_per_job": [
                    (b - a) * 1e6 / max(n, 1) for a, b, n in zip(cpu1, cpu2, spread, strict=True)
                ],
            }
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--queues", type=int, default=6)
    p.add_argument("--procs", type=int, default=2, help="producer (then consumer) processes")
    p.add_argument("--shards", default="1,3", help="comma-separated shard counts")
    a = p.parse_args(argv)
    print(f"redis-py {redis.__version__}; {a.jobs} jobs, {a.queues} queues, {a.procs} procs")
    print(
        "| shards | submits/s | claims+completes/s | jobs per shard | "
        "Redis CPU per job, submit (µs, per shard) | claim+complete (µs, per shard) |"
    )
    print("|---|---|---|---|---|---|")
    for shards in (int(s) for s in a.shards.split(",")):
        r = run(shards, a.jobs, a.queues, a.procs)
        fmt = lambda xs: " / ".join(f"{x:.0f}" for x in xs)  # noqa: E731
        print(
            f"| {r['shards']} | {r['submits_per_s']:,.0f} | {r['claims_per_s']:,.0f} | "
            f"{' / '.join(map(str, r['spread']))} | {fmt(r['submit_cpu_us_per_job'])} | "
            f"{fmt(r['claim_cpu_us_per_job'])} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
