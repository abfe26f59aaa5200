"""``python -m bench.flow``: what flow control costs (docs/flow-control.md).

Drain throughput of no-op jobs with worker processes, for one jobsys source tree
(``--tree``, default this one: pass another checkout, e.g. the main branch, to
compare) and one feature in use (``--feature``):

- ``none``: plain jobs, no limits (the baseline: every claim reads the queue's flow
  hash, empty);
- ``expiry``: every job has ``ttl_seconds`` (a deadline checked at each claim);
- ``concurrency``: every job has one of 100 ``concurrency_key``s, and the queue a
  concurrency limit that never binds (1,000 per key): the cost of choosing jobs;
- ``rate``: a queue rate limit that never binds (1,000,000 per second): the cost of
  the log and of one job per claim;
- ``paused``: the queue is paused until every job is queued, then resumed (checks
  that a resume wakes the workers; throughput as ``none``).

Drain rate = jobs completed per second between the first completion and the last
(worker start-up excluded), read from the queue's `completed` index; also Redis's
CPU per job during the drain and the mean FCALL time (INFO), which the load of a
shared machine disturbs less. Each run has its own redis-server on a free port.
Prints one JSON line per run.

    python -m bench.flow --feature none --jobs 20000 --workers 2 --repeat 3
    python -m bench.flow --tree /path/to/main --feature none --jobs 20000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis  # the venv's; the tree under test is only on the children's path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PRODUCER = r"""
import json, sys, time
from jobsys.settings import Settings
from jobsys.store import Store, Submission
feature, n = sys.argv[1], int(sys.argv[2])
store = Store(Settings.from_env())
def sub(i):
    if feature == "expiry":
        return Submission("noop", i, ttl_s=3600)
    if feature == "concurrency":
        return Submission("noop", i, concurrency_key=f"k{i % 100}")
    return Submission("noop", i)
if feature in ("concurrency", "rate", "paused"):
    store.submit_many([Submission("noop", -1)])  # registers the queue
    store.redis.delete("jobsys:queue:{default}:ready")
if feature == "concurrency":
    store.flow.set_limits("default", concurrency=1000)
if feature == "rate":
    store.flow.set_limits("default", rate=(1_000_000, 1.0))
if feature == "paused":
    store.flow.set_paused("default", True)
t0 = time.perf_counter()
for i in range(0, n, 1000):
    store.submit_many([sub(j) for j in range(i, min(n, i + 1000))])
print(json.dumps({"enqueue_s": time.perf_counter() - t0}))
"""


def run(tree: Path, feature: str, jobs: int, workers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=port, decode_responses=True)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "PYTHONPATH": f"{tree}{os.pathsep}{HERE}",
            "LOG_LEVEL": "WARNING",
        }
        procs: list[subprocess.Popen[bytes]] = []
        try:
            made = subprocess.run(
                [sys.executable, "-c", PRODUCER, feature, str(jobs)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            enqueue_s = json.loads(made.stdout.strip().splitlines()[-1])["enqueue_s"]
            done_key = "jobsys:queue:{default}:idx:completed"
            client.config_resetstat()
            cpu0 = _redis_cpu_s(client)
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "jobsys", "worker", "--tasks", "flow_tasks"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(workers)
            ]
            if feature == "paused":
                time.sleep(2.0)  # workers up and idle on a paused queue
                assert client.llen(done_key) == 0
                client.hdel("jobsys:queue:{default}:flow", "paused")
                client.zadd("jobsys:queue:{default}:wakeup", {"w": 0})
            first_t = first_n = None
            deadline = time.monotonic() + max(120.0, jobs / 100)
            while time.monotonic() < deadline:
                done = client.llen(done_key)
                now = time.perf_counter()
                if first_t is None and done > 0:
                    first_t, first_n = now, done
                if done >= jobs:
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"only {client.llen(done_key)} of {jobs} jobs done")
            assert first_t is not None and first_n is not None
            rate = (jobs - first_n) / max(1e-9, now - first_t)
            fcall = client.info("commandstats").get("cmdstat_fcall", {})
            return {
                "tree": str(tree), "feature": feature, "jobs": jobs, "workers": workers,
                "drain_per_s": round(rate), "enqueue_per_s": round(jobs / enqueue_s),
                # Less noisy on a shared machine than jobs/s: Redis's own CPU per job
                # during the drain, and the mean time of one script call (FCALL).
                "redis_cpu_us_per_job": round(1e6 * (_redis_cpu_s(client) - cpu0) / jobs, 1),
                "fcall_us": fcall.get("usec_per_call"),
            }  # fmt: skip
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            client.close()
            server.terminate()
            server.wait(10)


def _redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="jobsys source tree [this one]")
    parser.add_argument(
        "--feature",
        choices=["none", "expiry", "concurrency", "rate", "paused"],
        default="none",
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(
            json.dumps(run(args.tree.resolve(), args.feature, args.jobs, args.workers)), flush=True
        )


if __name__ == "__main__":
    main()
