"""The workloads. Each function is one run and returns plain numbers for the report.

- `drain`: enqueue N jobs from one producer (timed: the enqueue workload), read
  Redis memory and command counts, start the workers, wait until every job has
  left its record (timed: the drain workload), stop the workers, read Redis again
  (the memory workload). Run with 1, 2 and 4 workers it is the scaling workload.
- `latency`: idle workers, jobs at a steady rate, enqueue-to-start per job.
- `http_submit`: `POST /submit` (and `/submit/batch` when it exists) against
  `jobsys api` under gunicorn, driven by wrk (or Python threads without wrk).
- `batch`: `Store.submit_many` from one producer, when it exists.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    REPO,
    Bench,
    BenchError,
    Workers,
    count_records,
    delta,
    read_records,
    run_producer,
    wait_records,
)
from bench.systems.base import System
from bench.systems.jobsys_ import SYSTEM as _JOBSYS
from jobsys.local.redis_server import free_port
from jobsys.store import keys

#: Seconds to let the workers write the last results before Redis is measured.
SETTLE_S = 0.3
#: Sequence numbers of warm-up jobs (never measured).
WARMUP_SEQ = 900_000_000


def drain(bench: Bench, system: System, n: int, workers: int) -> dict[str, Any]:
    """One enqueue + drain + memory run with `n` jobs and `workers` worker processes."""
    bench.flush()
    out = bench.fresh_dir(f"{system.name}-drain-{workers}w")
    mem0, calls0, cpu0 = bench.used_memory(), bench.command_calls(), bench.cpu_s()
    produced = run_producer(bench, system, out, "enqueue", "--n", str(n))
    cpu1 = bench.cpu_s()
    mem1, calls1 = bench.used_memory(), bench.command_calls()

    spawned_ns = time.time_ns()
    pool = Workers(bench, system, workers, out)
    try:
        wait_records(out, n, pool, timeout_s=max(60.0, n / 50))
        time.sleep(SETTLE_S)
        pool.check()
        calls2 = bench.command_calls()
    finally:
        pool.stop()
    mem2, keys_left = bench.used_memory(), int(bench.client.dbsize())

    starts = read_records(out)
    missing = n - sum(1 for s in range(n) if s in starts)
    first, last = min(starts.values()), max(starts.values())
    by_start = [seq for seq, _ in sorted(starts.items(), key=lambda kv: kv[1])]
    # Jobs that started before one queued ahead of them (0 = FIFO; with one worker
    # process a FIFO queue shows none, with several their batches interleave).
    out_of_order = sum(1 for a, b in itertools.pairwise(by_start) if b < a)
    ordered = sorted(starts.values())
    lo, hi = ordered[len(ordered) // 10], ordered[(len(ordered) * 9) // 10]
    enqueue_calls, drain_calls = delta(calls1, calls0), delta(calls2, calls1)
    return {
        "n": n,
        "workers": workers,
        "enqueue_per_s": n / produced["seconds"],
        # CPU per enqueued job: the producer process's, and Redis's (INFO cpu), in us.
        # Less noisy than jobs/s on a shared machine: it leaves out the waits.
        "enqueue_producer_cpu_us": 1e6 * produced.get("cpu_s", float("nan")) / n,
        "enqueue_redis_cpu_us": 1e6 * (cpu1 - cpu0) / n,
        # From the first job's start to the last one's: worker start-up is excluded.
        "drain_per_s": (n - 1) / max(1e-9, (last - first) / 1e9),
        # The same, counting from the moment the workers were spawned.
        "drain_with_startup_per_s": n / max(1e-9, (last - spawned_ns) / 1e9),
        # Between the 10th and 90th percentile of start times (ignores start-up and tail).
        "drain_p10_p90_per_s": (0.8 * n) / max(1e-9, (hi - lo) / 1e9),
        "bytes_per_queued_job": (mem1 - mem0) / n,
        "bytes_per_finished_job": (mem2 - mem0) / n,
        # Keys left once every job has finished: about 1 per job when job state is kept.
        "keys_per_finished_job": keys_left / n,
        "commands_per_enqueue": sum(enqueue_calls.values()) / n,
        "commands_per_job_run": sum(drain_calls.values()) / n,
        "enqueue_commands": _top(enqueue_calls, n),
        "run_commands": _top(drain_calls, n),
        "startup_s": (first - spawned_ns) / 1e9,
        "out_of_order": out_of_order,
        "duplicates": count_records(out) - len(starts),
        "missing": missing,
    }


def _top(calls: dict[str, int], n: int, k: int = 8) -> dict[str, float]:
    return {name: round(c / n, 3) for name, c in list(calls.items())[:k]}


def latency(
    bench: Bench, system: System, rate: float, seconds: float, windows: int, workers: int
) -> list[dict[str, Any]]:
    """Idle workers; jobs at `rate`/s for `windows` consecutive windows of `seconds`.

    One producer sends them all; each window's enqueue-to-start percentiles are one repeat.
    """
    bench.flush()
    out = bench.fresh_dir(f"{system.name}-latency")
    pool = Workers(bench, system, workers, out)
    try:
        warm = 4 * workers
        run_producer(bench, system, out, "enqueue", "--n", str(warm), "--start", str(WARMUP_SEQ))
        wait_records(out, warm, pool, timeout_s=60)
        time.sleep(0.5)  # let every worker go idle (blocked, or polling) again
        per_window = max(1, round(rate * seconds))
        total = per_window * windows
        sent = out / "sent"
        run_producer(
            bench,
            system,
            out,
            *("steady", "--rate", str(rate), "--n", str(total), "--out", str(sent)),
        )
        wait_records(out, warm + total, pool, timeout_s=60)
        pool.check()
    finally:
        pool.stop()
    starts = read_records(out)
    lat_ms: list[list[float]] = [[] for _ in range(windows)]
    for line in sent.read_text().splitlines():
        seq, sent_ns = (int(x) for x in line.split())
        lat_ms[seq // per_window].append((starts[seq] - sent_ns) / 1e6)
    return [{"n": per_window, "rate": rate, **percentiles(w)} for w in lat_ms]


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of `values` (nearest-rank on the sorted list)."""
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def batch(bench: Bench, system: System, n: int, size: int) -> dict[str, Any]:
    """`Store.submit_many` in batches of `size` from one producer ({"skipped": why} without it)."""
    bench.flush()
    out = bench.fresh_dir(f"{system.name}-batch")
    res = run_producer(bench, system, out, "enqueue", "--n", str(n), "--batch", str(size))
    if "skipped" in res:
        return res
    queued = int(bench.client.zcard(keys.ready("default")))
    if queued != n:
        raise BenchError(f"submit_many: {queued} jobs queued, {n} expected")
    return {"n": n, "batch": size, "enqueue_per_s": n / res["seconds"]}


# -- HTTP ----------------------------------------------------------------------


class Api:
    """`jobsys api` (gunicorn, production settings) on a free loopback port."""

    def __init__(self, bench: Bench, out: Path) -> None:
        self.port = free_port()
        self.log = out / "api.log"
        env = bench.env(out, _JOBSYS)
        cmd = [sys.executable, "-m", "jobsys", "api", "--host", "127.0.0.1"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while not self._healthy():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"jobsys api did not start; see {self.log}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            status, _ = _request(self.port, "GET", "/health", None)
        except OSError:
            return False
        return status == 200

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL the whole process group."""
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _request(port: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_bodies(batch_size: int) -> tuple[bytes, bytes]:
    """The bodies of one single submit and of one batch submit."""
    single = json.dumps({"task": "noop", "payload": 1}).encode()
    jobs = [{"task": "noop", "payload": i} for i in range(batch_size)]
    return single, json.dumps({"jobs": jobs}).encode()


def http_submit(
    bench: Bench,
    seconds: float,
    connections: int,
    repeats: int,
    batch_size: int,
) -> dict[str, Any]:
    """Single and batch submits over HTTP; `repeats` runs of each."""
    out = bench.fresh_dir("jobsys-http")
    api = Api(bench, out)
    single_body, batch_body = http_bodies(batch_size)
    tool = "wrk" if shutil.which("wrk") else "python-threads"
    result: dict[str, Any] = {"tool": tool, "connections": connections, "single": [], "batch": []}
    try:
        status, answer = _request(api.port, "POST", "/submit/batch", http_bodies(1)[1])
        if status not in (202, 404, 405):
            raise BenchError(f"POST /submit/batch answered {status}: {answer[:300]!r}")
        has_batch = status == 202
        result["batch_path"] = has_batch
        for _ in range(repeats):
            for kind, body, per_req in (("single", single_body, 1), ("batch", batch_body, 0)):
                if kind == "batch" and not has_batch:
                    continue
                path = "/submit" if kind == "single" else "/submit/batch"
                bench.flush()
                load = _drive(tool, api.port, path, body, seconds, connections, out)
                queued = _settled_count(bench)
                jobs_per_req = per_req or batch_size
                # wrk stops with up to one request per connection in flight, which the
                # server still completes: those jobs exist but are not counted.
                accepted = load["ok"] * jobs_per_req
                if not accepted <= queued <= accepted + connections * jobs_per_req:
                    raise BenchError(
                        f"HTTP {kind}: {load['ok']} accepted requests but {queued} jobs queued"
                    )
                result[kind].append(
                    {
                        "requests_per_s": load["ok"] / load["seconds"],
                        "jobs_per_s": accepted / load["seconds"],
                        "errors": load["errors"],
                        "latency_p50_ms": load.get("p50_ms"),
                        "latency_p99_ms": load.get("p99_ms"),
                    }
                )
    finally:
        api.stop()
    return result


def _settled_count(bench: Bench) -> int:
    """Jobs queued, once requests still in flight when the load stopped have landed."""
    last = -1
    while True:
        now = int(bench.client.zcard(keys.ready("default")))
        if now == last:
            return now
        last = now
        time.sleep(0.2)


def _drive(
    tool: str, port: int, path: str, body: bytes, seconds: float, connections: int, out: Path
) -> dict[str, Any]:
    if tool == "wrk":
        return wrk_run(port, path, body, seconds, connections, out)
    return _threads(port, path, body, seconds, connections)


_WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%s", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("BENCH %%d %%d %%d %%d %%d\\n", summary.duration,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_run(
    port: int, path: str, body: bytes, seconds: float, connections: int, out: Path
) -> dict[str, Any]:
    body_file = out / "body.json"
    body_file.write_bytes(body)
    script = out / "post.lua"
    script.write_text(_WRK_LUA % body_file)
    # One wrk thread: this machine has 2 cores, and the API needs them.
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    done = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    )
    (out / "wrk.log").open("a").write(done.stdout + done.stderr)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    duration_us, requests, errors, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return {
        "seconds": duration_us / 1e6,
        "ok": requests - errors,
        "errors": errors,
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
    }


def _threads(port: int, path: str, body: bytes, seconds: float, connections: int) -> dict[str, Any]:
    """Keep-alive clients on Python threads (the client is the bottleneck: a floor only)."""
    ok = [0] * connections
    errors = [0] * connections
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < stop:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 202:
                ok[i] += 1
            else:
                errors[i] += 1
        conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.monotonic() - start, "ok": sum(ok), "errors": sum(errors)}
