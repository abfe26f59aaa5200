"""CPU per HTTP ``POST /submit`` (or per job of ``POST /submit/batch``), by process:
the API's gunicorn workers, Redis, wrk.

Runs ``jobsys api`` (gunicorn, default settings; ``API_WORKERS`` from the
environment) on a private Redis and drives it with wrk, 16 connections, for
``--seconds``, ``--repeat`` times. Prints per run the requests/s, the CPU per request
of the API's processes (gunicorn's master and workers), of Redis and of wrk, and the
CPU seconds of each API worker process: gunicorn's workers accept connections as
they come, so a run in which one process took all of wrk's connections measures one
process (docs/benchmarks.md). ``--batch N`` sends batches of N jobs instead and
gives the figures per job.

Compares two trees when run from each (the jobsys on ``sys.path`` is measured)::

    .venv/bin/python -m bench.http_cpu
    cd /tmp/old && PYTHONPATH=/tmp/old /path/to/.venv/bin/python -m bench.http_cpu

Linux only (it reads /proc); needs wrk.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from bench import workloads
from bench.harness import private_redis

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def _group(pgid: int) -> list[int]:
    """The processes of process group `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:  # ended meanwhile
                continue
    return pids


def _wrk_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http_cpu", description=__doc__)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--batch",
        type=int,
        default=0,
        metavar="N",
        help="POST /submit/batch with N jobs per request; figures per job",
    )
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.http_cpu needs wrk", file=sys.stderr)
        return 2
    single, batch = workloads.http_bodies(max(args.batch, 1))
    path, body, jobs = (
        ("/submit/batch", batch, args.batch) if args.batch else ("/submit", single, 1)
    )
    u = "job" if args.batch else "req"
    print(f"| run | {u}s/s | API µs/{u} | Redis µs/{u} | wrk µs/{u} | CPU s of each API worker |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp, private_redis(Path(tmp)) as bench:
        out = bench.fresh_dir("http-cpu")
        api = workloads.Api(bench, out)
        try:
            for run in range(1, args.repeat + 1):
                bench.flush()
                pids = _group(api.proc.pid)
                before = {pid: _cpu_s(pid) for pid in pids}
                redis0, wrk0 = bench.cpu_s(), _wrk_cpu_s()
                load = workloads.wrk_run(api.port, path, body, args.seconds, 16, out)
                each = {pid: _cpu_s(pid) - before[pid] for pid in pids}
                n = load["ok"] * jobs
                per = {  # per request, or per job of a batch
                    "api": sum(each.values()) / n * 1e6,
                    "redis": (bench.cpu_s() - redis0) / n * 1e6,
                    "wrk": (_wrk_cpu_s() - wrk0) / n * 1e6,
                }
                workers = [s for pid, s in each.items() if pid != api.proc.pid]  # not the master
                split = " · ".join(f"{s:.2f}" for s in sorted(workers, reverse=True))
                d = 1 if jobs > 1 else 0  # decimals: a job of a batch costs a few µs
                print(
                    f"| {run} | {n / load['seconds']:,.0f} | {per['api']:.{d}f} | "
                    f"{per['redis']:.{d}f} | {per['wrk']:.{d}f} | {split} |",
                    flush=True,
                )
        finally:
            api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
