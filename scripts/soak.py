"""Soak run: steady load for a while; Redis memory must stay flat.

Starts a private Redis and two `jobsys worker` processes, then submits jobs at a
steady rate (1 in 20 fails for good and goes to dead_letter), with short
retention so that the steady state is reached quickly. Every 10 s it samples
Redis's `used_memory` and key count, prints a table, and exits 1 if memory in
the last third of the run is more than 10% above the middle third.

    python scripts/soak.py [--seconds 180] [--rate 500] [--retention 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store, Submission


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--rate", type=int, default=500, help="jobs per second")
    parser.add_argument("--retention", type=int, default=10, help="seconds")
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp()), appendonly=False).start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "SIMULATED_WORK_SECONDS": "0",
        "COMPLETED_RETENTION_SECONDS": str(args.retention),
        "FAILED_RETENTION_SECONDS": str(args.retention),
        "DEAD_LETTER_MAX_LENGTH": "1000",
        "LOG_LEVEL": "WARNING",
    }
    store = Store(Settings.from_env(env))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "jobsys", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    rows: list[tuple[int, int, int, int, int]] = []
    submitted = 0
    try:
        start = time.monotonic()
        next_sample = start
        tick = 0.1
        while (now := time.monotonic()) - start < args.seconds:
            due = int((now - start) * args.rate) - submitted
            if due > 0:
                jobs = [
                    Submission("fail", max_retries=0)
                    if (submitted + i) % 20 == 0
                    else Submission("work", {"n": submitted + i})
                    for i in range(due)
                ]
                store.submit_many(jobs)
                submitted += due
            if now >= next_sample:
                info = store.redis.info("memory")
                rows.append(
                    (
                        round(now - start),
                        int(info["used_memory"]),
                        int(store.redis.dbsize()),
                        int(store.redis.llen("dead_letter")),
                        submitted,
                    )
                )
                next_sample += 10
            time.sleep(tick)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        store.close()
        server.stop()
    print(f"soak: {args.rate} jobs/s for {args.seconds} s, retention {args.retention} s, 2 workers")
    print("| t (s) | used_memory (bytes) | keys | dead_letter | submitted |")
    print("|---|---|---|---|---|")
    for t, mem, keys, dead, sub in rows:
        print(f"| {t} | {mem:,} | {keys:,} | {dead:,} | {sub:,} |")
    third = max(1, len(rows) // 3)
    middle = statistics.mean(r[1] for r in rows[third : 2 * third])
    last = statistics.mean(r[1] for r in rows[2 * third :])
    growth = (last - middle) / middle
    print(f"used_memory, mean of the last third vs the middle third: {growth:+.1%}")
    return 0 if growth < 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
