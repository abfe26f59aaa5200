"""``python -m bench.dependencies``: what a job dependency costs (issue 17).

10,000 jobs each depending on one of 100 parents, against the same 10,000 jobs
without dependencies, on a private Redis. Both runs submit in 10 calls of 1,000
jobs, then claim and complete every job through the Store in batches of 200 (no
handlers, no worker processes: the figures are Redis's and the producer's, not a
handler's). Reported per job: the producer's wall time to submit, and the Redis
time spent inside FCALL (INFO commandstats, ``cmdstat_fcall`` usec) to submit and
to settle, so the difference is the cost of the dependency: the waiting index,
the children set, and the release by the parent's complete.lua.

    python -m bench.dependencies [--parents 100] [--children 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import private_redis
from jobsys.settings import Settings
from jobsys.store import Store, Submission

CHUNK = 1000
CLAIM = 200


def _fcall_us(client: Any) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("usec", 0))


def run(url: str, client: Any, parents: int, children: int, dependent: bool) -> dict[str, Any]:
    client.flushall()
    client.config_resetstat()
    store = Store(Settings.from_env({"REDIS_URL": url}))
    try:
        pids = store.submit_jobs([Submission("p", i) for i in range(parents)]).ids
        t0, r0 = time.perf_counter(), _fcall_us(client)
        for start in range(0, children, CHUNK):
            subs = [
                Submission("c", i, depends_on=(pids[i % parents],) if dependent else ())
                for i in range(start, min(start + CHUNK, children))
            ]
            store.submit_jobs(subs)
        submit_s, submit_us = time.perf_counter() - t0, _fcall_us(client) - r0
        r1 = _fcall_us(client)
        done = 0
        while batch := store.claim("default", "bench", 60, CLAIM):
            store.complete_many("default", "bench", [(j.id, j.attempt, "null") for j in batch])
            done += len(batch)
        settle_us = _fcall_us(client) - r1
        assert done == parents + children, done
    finally:
        store.close()
    return {
        "dependent": dependent,
        "submit_us_per_job_wall": round(submit_s * 1e6 / children, 1),
        "submit_us_per_job_redis": round(submit_us / children, 1),
        "claim_complete_us_per_job_redis": round(settle_us / (parents + children), 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dependencies", description=__doc__)
    p.add_argument("--parents", type=int, default=100)
    p.add_argument("--children", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, private_redis(Path(tmp)) as bench:
        for _ in range(a.repeat):
            for dependent in (False, True):
                rows.append(run(bench.url, bench.client, a.parents, a.children, dependent))
    best: dict[bool, dict[str, Any]] = {}
    for r in rows:  # each figure's best of the repeats: the least disturbed by the load
        b = best.setdefault(r["dependent"], dict(r))
        for k, v in r.items():
            if k != "dependent":
                b[k] = min(b[k], v)
    print(json.dumps({"runs": rows, "best": list(best.values())}, indent=1))
    plain, dep = best[False], best[True]
    print(
        f"\nper dependent job (best of {a.repeat}): submit +"
        f"{dep['submit_us_per_job_redis'] - plain['submit_us_per_job_redis']:.1f} us Redis, "
        f"+{dep['submit_us_per_job_wall'] - plain['submit_us_per_job_wall']:.1f} us wall; "
        f"claim+complete +"
        f"{dep['claim_complete_us_per_job_redis'] - plain['claim_complete_us_per_job_redis']:.1f}"
        " us Redis"
    )


if __name__ == "__main__":
    main()
