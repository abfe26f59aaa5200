"""How soon ``GET /jobs/<id>?wait=`` answers after its job completes (docs/events.md).

Runs its own Redis and one ``jobsys api`` process (gunicorn, gevent, 1 worker
process). For each sample: submit a job, start a request ``?wait=30`` on it, let it
wait, complete the job (as a worker would, through the Store), and measure from the
moment ``complete.lua`` returned to the moment the answer arrived. Prints p50, p95,
p99 and max, in ms::

    .venv/bin/python -m bench.wait_latency --samples 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from jobsys.local.redis_server import RedisServer, free_port
from jobsys.settings import Settings
from jobsys.store import Store


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wait_latency", description=__doc__)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--concurrent", type=int, default=1, help="waiting requests at once")
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="jobsys-wait-"))
    server = RedisServer(scratch, appendonly=False).start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "API_WORKERS": "1", "LOG_LEVEL": "WARNING"}
    with (scratch / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    store = Store(Settings.from_env({"REDIS_URL": server.url}))
    try:
        _wait_up(base)
        latencies = [x for _ in range(args.samples) for x in _sample(base, store, args.concurrent)]
    finally:
        api.terminate()
        api.wait(10)
        store.close()
        server.stop()
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(
        f"?wait= answer after completion, {len(ms)} samples "
        f"({args.concurrent} waiting at once): p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, "
        f"p99 {q[98]:.1f} ms, max {ms[-1]:.1f} ms"
    )
    return 0


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit("the API did not come up")


def _sample(base: str, store: Store, concurrent: int) -> list[float]:
    ids = store.submit_many([("bench", None)] * concurrent)
    arrived: dict[str, float] = {}

    def wait(job_id: str) -> None:
        r = requests.get(f"{base}/jobs/{job_id}", params={"wait": "30"}, timeout=40)
        arrived[job_id] = time.perf_counter()
        assert r.json().get("status") == "completed", (r.status_code, r.text)

    threads = [threading.Thread(target=wait, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    time.sleep(0.05)  # the requests are waiting
    completed: dict[str, float] = {}
    while len(completed) < len(ids):
        claimed = store.claim("default", "bench", 30, len(ids))
        store.complete_many("default", "bench", [(c.id, c.attempt, "1") for c in claimed])
        now = time.perf_counter()
        completed |= {c.id: now for c in claimed}
    for t in threads:
        t.join(40)
    return [arrived[i] - completed[i] for i in ids]


if __name__ == "__main__":
    raise SystemExit(main())
