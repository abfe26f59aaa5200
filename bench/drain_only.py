"""The drain workload alone, for jobsys: jobs/s, Redis commands, CPU and bytes per job.

Compares two trees when run from each (the jobsys on ``sys.path`` is measured)::

    .venv/bin/python -m bench.drain_only --jobs 10000 --repeat 2
    cd /tmp/old && PYTHONPATH=/tmp/old /path/to/.venv/bin/python -m bench.drain_only

Prints one JSON object per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from bench import workloads
from bench.__main__ import MODES, cpu_busy, prepare
from bench.harness import private_redis


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drain_only", description=__doc__)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    plan = replace(MODES["default"], systems=["jobsys"], jobs=args.jobs, scaling=())
    systems, _ = prepare(plan)
    scratch = Path(tempfile.mkdtemp(prefix="jobsys-drain-"))
    with private_redis(scratch) as bench:
        for _ in range(args.repeat):
            busy = cpu_busy(1.0)
            cpu0 = bench.cpu_s()
            r = workloads.drain(bench, systems[0], args.jobs, args.workers)
            cpu1 = bench.cpu_s()
            row = {
                "drain_per_s": round(r["drain_per_s"]),
                "cpu_busy_before": round(busy, 2),
                "commands_per_job_run": round(r["commands_per_job_run"], 1),
                "redis_cpu_us_per_job": round(1e6 * (cpu1 - cpu0) / args.jobs, 1),
                "bytes_per_finished_job": round(r["bytes_per_finished_job"]),
            }
            print(json.dumps(row), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
