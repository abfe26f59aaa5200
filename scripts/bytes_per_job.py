"""Redis bytes per finished job: submit N jobs, run them with a worker, INFO memory / N.

Starts a private Redis (no persistence), submits `--jobs` jobs of a task without
a handler (`SIMULATED_WORK_SECONDS=0`) one by one, runs one `jobsys worker`
until every job is `completed`, stops it, and prints `used_memory` after minus
before, divided by the number of jobs. Memory figures are exact (no timing).

    python scripts/bytes_per_job.py [--jobs 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store, keys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp()), appendonly=False).start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "SIMULATED_WORK_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    store = Store(Settings.from_env(env))
    try:
        client = store.redis
        store.submit("warm-up")  # the queue's fixed keys exist before the baseline
        _drain(store, env, 1)
        client.execute_command("MEMORY", "PURGE")
        mem0 = int(client.info("memory")["used_memory"])
        for i in range(args.jobs):
            store.submit("noop", i)
        mem1 = int(client.info("memory")["used_memory"])
        _drain(store, env, args.jobs + 1)
        mem2 = int(client.info("memory")["used_memory"])
        idx = keys.index("default", "completed")
        kind = client.type(idx)
        usage = client.execute_command("MEMORY", "USAGE", idx, "SAMPLES", "0")
        n = args.jobs
        print(f"jobs: {n}")
        print(f"bytes per queued job:   {(mem1 - mem0) / n:.1f}")
        print(f"bytes per finished job: {(mem2 - mem0) / n:.1f}")
        print(f"completed index: {kind}, MEMORY USAGE {usage} B = {int(usage) / (n + 1):.1f} B/job")
    finally:
        store.close()
        server.stop()
    return 0


def _drain(store: Store, env: dict[str, str], total: int) -> None:
    """Run one worker until `total` jobs are completed."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobsys", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while _completed(store) < total:
            if time.monotonic() > deadline:
                raise SystemExit("the jobs did not finish within 300 s")
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)


def _completed(store: Store) -> int:
    """How many jobs the `completed` index holds (a ZSET before, a LIST since)."""
    idx = keys.index("default", "completed")
    if store.redis.type(idx) == "list":
        return int(store.redis.llen(idx))
    return int(store.redis.zcard(idx))


if __name__ == "__main__":
    sys.exit(main())
