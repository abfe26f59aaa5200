"""Measure how long a SIGKILLed worker's job takes to come back and complete.

Starts a private Redis, two `jobsys worker` processes and, per round, submits a
job that simulates work, SIGKILLs the worker that claimed it and times how long
until another worker has claimed it again (attempt 2). Prints a table.

    python scripts/measure_recovery.py [--lease 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobsys", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lease", type=float, default=30.0, help="JOB_LEASE_SECONDS")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp()), appendonly=False).start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "JOB_LEASE_SECONDS": str(args.lease),
        "SIMULATED_WORK_SECONDS": "3600",
    }
    store = Store(Settings.from_env(env))
    workers = [start_worker(env), start_worker(env)]
    time.sleep(1.5)
    rows = []
    try:
        for _ in range(args.rounds):
            job_id = store.submit("long")
            while store.get(job_id).status != "processing":
                time.sleep(0.01)
            holder = store.get(job_id).worker or ""
            pid = int(holder.split(":")[1])
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            while store.get(job_id).attempts < 2:
                time.sleep(0.01)
            rows.append(time.monotonic() - killed)
            workers = [w for w in workers if w.pid != pid]
            for w in workers:  # free the survivor for the next round
                w.send_signal(signal.SIGKILL)
            store.redis.flushall()
            workers = [start_worker(env), start_worker(env)]
            time.sleep(1.5)
    finally:
        for w in workers:
            w.kill()
        server.stop()
    print("| JOB_LEASE_SECONDS | round | killed → claimed again (s) |")
    print("|---|---|---|")
    for i, t in enumerate(rows, 1):
        print(f"| {args.lease:g} | {i} | {t:.2f} |")


if __name__ == "__main__":
    main()
