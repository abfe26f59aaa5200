"""``python -m bench.cluster_relay``: what a dependency across hash slots costs in
Redis Cluster mode (issue 17; docs/workflows.md, "Redis Cluster").

On a private cluster of three primaries, `--pairs` parents each with one child,
three ways: the child in another slot (on another primary: the outbox and the
relay), the child in the parent's slot (the same step, as on one Redis), and the
parent alone (no child). Each parent is claimed and completed through the Store,
one at a time; reported per parent: the wall time of the complete call (for the
cross-slot child it includes the relay that releases the child: the time from the
call to the child being `queued`), and the Redis time inside FCALL (INFO
commandstats, every primary) of that phase, per parent. Also the time from a
parent's completion to its child's release when the completing process dies
before relaying and a worker's recovery pass relays (`Store.recover`, as a
worker's heartbeat thread runs it), from the end of the complete call.

    .venv/bin/python -m bench.cluster_relay [--pairs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_cluster import RedisCluster


def _fcall_us(cluster: RedisCluster) -> int:
    total = 0
    for i in range(cluster.primaries):
        c = cluster.client(i)
        total += int(c.info("commandstats").get("cmdstat_fcall", {}).get("usec", 0))
        c.close()
    return total


def _two_queues(store: Store) -> tuple[str, str]:
    """Two queue names on two different primaries."""
    first = store.redis.get_node_from_key(keys.ready("p0")).name  # type: ignore[attr-defined]
    for i in range(1, 200):
        if store.redis.get_node_from_key(keys.ready(f"p{i}")).name != first:  # type: ignore[attr-defined]
            return "p0", f"p{i}"
    raise RuntimeError("no two queues on two primaries")


def _phase(
    store: Store, cluster: RedisCluster, pairs: int, child_queue: str | None
) -> dict[str, Any]:
    parent_q = "p0"
    store.redis.flushall()
    parents = store.submit_jobs([Submission("p", i) for i in range(pairs)], queue=parent_q).ids
    if child_queue is not None:
        for start in range(0, pairs, 500):
            subs = [
                Submission("c", i, depends_on=(p,))
                for i, p in enumerate(parents[start : start + 500])
            ]
            store.submit_jobs(subs, queue=child_queue)
    walls = []
    r0 = _fcall_us(cluster)
    for _ in range(pairs):
        (job,) = store.claim(parent_q, "bench", 60, 1)
        t = time.perf_counter()
        store.complete(parent_q, job.id, "bench", job.attempt, "null")
        walls.append(time.perf_counter() - t)
    redis_us = _fcall_us(cluster) - r0
    if child_queue is not None:
        ready = int(store.redis.zcard(keys.ready(child_queue)))
        assert ready == pairs, ready
    walls.sort()
    return {
        "complete_wall_us_median": round(statistics.median(walls) * 1e6, 1),
        "complete_wall_us_p99": round(walls[int(0.99 * (len(walls) - 1))] * 1e6, 1),
        "fcall_redis_us_per_parent": round(redis_us / pairs, 1),
    }


def _recovered(store: Store, rounds: int, child_queue: str) -> dict[str, Any]:
    """The complete's process "dies" before its relay; a recovery pass relays."""
    store.redis.flushall()
    took = []
    relay = store.scripts._relay
    for i in range(rounds):
        (p,) = store.submit_jobs([Submission("p", i)], queue="p0").ids
        (c,) = store.submit_jobs([Submission("c", i, depends_on=(p,))], queue=child_queue).ids
        (job,) = store.claim("p0", "bench", 60, 1)
        store.scripts._relay = lambda queue: None  # type: ignore[method-assign]
        store.complete("p0", job.id, "bench", job.attempt, "null")
        store.scripts._relay = relay  # type: ignore[method-assign]
        t = time.perf_counter()
        store.recover("p0")
        took.append(time.perf_counter() - t)
        assert store.get(c).status == "queued"
    return {"recovery_pass_us_median": round(statistics.median(took) * 1e6, 1)}


def _fanout(store: Store, children: int, child_queue: str) -> dict[str, Any]:
    """One parent with `children` children in another slot: the complete call's wall
    time, which relays the end to every child."""
    store.redis.flushall()
    (p,) = store.submit_jobs([Submission("p", 0)], queue="p0").ids
    for start in range(0, children, 500):
        n = min(500, children - start)
        store.submit_jobs(
            [Submission("c", i, depends_on=(p,)) for i in range(n)], queue=child_queue
        )
    (job,) = store.claim("p0", "bench", 60, 1)
    t = time.perf_counter()
    store.complete("p0", job.id, "bench", job.attempt, "null")
    took = time.perf_counter() - t
    assert int(store.redis.zcard(keys.ready(child_queue))) == children
    return {"children": children, "complete_wall_ms": round(took * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=1000, help="children of one parent")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = RedisCluster(Path(tmp), primaries=3).start()
        store = Store(Settings.from_env({"REDIS_CLUSTER_NODES": cluster.seeds}))
        try:
            store.scripts.load()
            parent_q, other = _two_queues(store)
            rows = {
                "no child": _phase(store, cluster, args.pairs, None),
                "child in the parent's slot": _phase(store, cluster, args.pairs, parent_q),
                "child in another slot (relay)": _phase(store, cluster, args.pairs, other),
            }
            extra = _recovered(store, min(args.pairs, 200), other)
            fan = _fanout(store, args.fanout, other)
        finally:
            store.close()
            cluster.stop()
    print(f"{args.pairs} parents, completed one at a time, on 3 primaries:")
    print("| child | complete wall median (µs) | p99 (µs) | Redis FCALL time per parent (µs) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['complete_wall_us_median']} | {r['complete_wall_us_p99']} "
            f"| {r['fcall_redis_us_per_parent']} |"
        )
    print(f"relay by a recovery pass instead (median wall of Store.recover): {extra}")
    print(f"one parent, its children in another slot: {fan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
