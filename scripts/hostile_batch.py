"""What one hostile batch costs the API: memory, time, and /health latency meanwhile.

Starts a private Redis (no persistence) and `jobsys api` (gunicorn, one gevent
worker process, production settings) as real processes, then:

1. sends one 16 MiB ``POST /submit/batch`` of 16 jobs whose payloads are arrays
   of `--value` (``[{},{},...]`` by default: about 5.6 million JSON values), and prints the answer's
   status, its time and the gunicorn worker's peak RSS (VmHWM of
   /proc/<pid>/status, reset before the request through /proc/<pid>/clear_refs);
2. sends four such bodies at once while polling ``GET /health`` every 50 ms, and
   prints the worker's peak RSS, the time until the last answer and the slowest
   /health answer;
3. submits `--big-jobs` jobs of the largest payload every API accepts (just under
   1 MiB: one ``POST /submit`` each) and prints the size and time of
   ``GET /jobs?limit=500``, and of the same page with ``include=payload,result``.

    python scripts/hostile_batch.py [--value '{}'] [--big-jobs 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jobsys.local.redis_server import RedisServer, free_port

BATCH_BYTES = 16 * 1024 * 1024
JOBS = 16


def hostile_body(value: bytes, size: int) -> bytes:
    """A batch body of just under `size` bytes: JOBS jobs with arrays of `value`."""
    frame = b'{"task":"t","payload":[%s]}'
    per_job = (size - 64) // JOBS - len(frame)
    items = b",".join([value] * (per_job // (len(value) + 1)))
    return b'{"jobs":[' + b",".join([frame % items] * JOBS) + b"]}"


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 300
) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one request on a new connection."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - start
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def start_api(redis_url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "API_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if request(port, "GET", "/health", timeout=2)[0] == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"jobsys api did not start; see {log}")
        time.sleep(0.1)


def one(port: int, worker: int, body: bytes) -> None:
    reset_peak(worker)
    before = status_kib(worker, "VmRSS")
    status, answer, seconds = request(port, "POST", "/submit/batch", body)
    print(f"one batch:  {status} in {seconds:.2f}s; worker RSS {mib(before)} -> peak "
          f"{mib(status_kib(worker, 'VmHWM'))}; answer {answer[:120]!r}")  # fmt: skip


def four(port: int, worker: int, body: bytes) -> None:
    reset_peak(worker)
    done = threading.Event()
    health: list[float] = []

    def poll() -> None:
        while not done.is_set():
            try:
                health.append(request(port, "GET", "/health", timeout=120)[2])
            except OSError:
                health.append(float("inf"))
            time.sleep(0.05)

    results: list[tuple[int, float]] = []

    def send() -> None:
        status, _, seconds = request(port, "POST", "/submit/batch", body)
        results.append((status, seconds))

    poller = threading.Thread(target=poll)
    senders = [threading.Thread(target=send) for _ in range(4)]
    start = time.perf_counter()
    poller.start()
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    total = time.perf_counter() - start
    done.set()
    poller.join()
    statuses = sorted({s for s, _ in results})
    print(f"four at once: {statuses} all answered in {total:.2f}s; worker peak "
          f"{mib(status_kib(worker, 'VmHWM'))}; /health slowest {max(health):.3f}s "
          f"(median {sorted(health)[len(health) // 2]:.3f}s, {len(health)} polls)")  # fmt: skip


def listing(port: int, worker: int, big_jobs: int) -> None:
    # The largest payload /submit accepts: a string filling the 1 MiB body.
    frame = b'{"task":"t","payload":"%s"}'
    body = frame % (b"x" * (1024 * 1024 - len(frame) - 8))
    for _ in range(big_jobs):
        status, answer, _ = request(port, "POST", "/submit", body)
        if status != 202:
            raise SystemExit(f"submit: {status} {answer[:200]!r}")
    for query in ("limit=500", "limit=500&include=payload,result"):
        reset_peak(worker)
        status, page, seconds = request(port, "GET", f"/jobs?{query}")
        jobs = len(json.loads(page)["jobs"]) if status == 200 else "-"
        print(f"GET /jobs?{query}: {status}, {len(page):,} bytes, {jobs} jobs, {seconds:.2f}s; "
              f"worker peak {mib(status_kib(worker, 'VmHWM'))}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--value", default="{}", help="the JSON value the arrays repeat")
    parser.add_argument("--batch-bytes", type=int, default=BATCH_BYTES, help="body size")
    parser.add_argument("--big-jobs", type=int, default=16, help="1 MiB jobs for the listing")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    server = RedisServer(work / "redis", appendonly=False).start()
    api, port = start_api(server.url, work / "api.log")
    try:
        (worker,) = children(api.pid)
        print(f"jobsys api: master {api.pid}, worker {worker}; log {work / 'api.log'}")
        body = hostile_body(args.value.encode(), args.batch_bytes)
        values = body.count(b",") + JOBS * 3 + 2
        print(f"hostile body: {len(body):,} bytes, about {values:,} JSON values")
        one(port, worker, body)
        four(port, worker, body)
        request(port, "GET", "/health")
        status, page, seconds = request(port, "GET", "/jobs?limit=500")
        print(f"GET /jobs?limit=500 after the batches: {status}, {len(page):,} bytes, "
              f"{seconds:.2f}s")  # fmt: skip
        listing(port, worker, args.big_jobs)
    finally:
        api.terminate()
        try:
            api.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(api.pid, signal.SIGKILL)
            api.wait()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
