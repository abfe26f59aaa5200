"""Where a job's time goes in the worker: CPU per job and a cProfile of the hot path.

Starts a private Redis, queues N jobs of the benchmark's `noop` task (with
``--job incr``: one INCR on the worker's own connection, as ``python -m bench
--job incr``), then drains them with one `Worker` on this thread under cProfile,
with the default settings and INFO logs (to a file, as a worker's stdout would
be, written by the log writer thread as in a running worker; ``--log-level
WARNING`` shows what the per-job lines cost). Prints the worker process's CPU per
job, Redis's CPU per job, and the functions that cost the most.

    python -m bench.profile_worker [--jobs 20000] [--job noop|incr|async] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_worker")
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--job", choices=("noop", "incr", "async"), default="noop")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--no-profile", action="store_true", help="CPU per job only (no cProfile)")
    p.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the worker (default INFO)")
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="jobsys-profile-"))
    os.environ["BENCH_JOB"] = args.job
    os.environ["BENCH_OUT_DIR"] = str(scratch)

    from jobsys.local.redis_server import RedisServer  # noqa: PLC0415
    from jobsys.logs import configure_logging, lines_written_in_background  # noqa: PLC0415
    from jobsys.settings import Settings  # noqa: PLC0415
    from jobsys.store import Store  # noqa: PLC0415
    from jobsys.store.submission import Submission  # noqa: PLC0415
    from jobsys.worker import Worker  # noqa: PLC0415

    server = RedisServer(scratch / "redis", appendonly=False).start()
    try:
        os.environ["BENCH_REDIS_URL"] = server.url
        import bench.tasks_jobsys  # noqa: F401, PLC0415  (registers `noop`)

        settings = Settings.from_env({"REDIS_URL": server.url, "LOG_LEVEL": args.log_level})
        configure_logging(settings)
        log = (scratch / "worker.log").open("w")
        for h in logging.getLogger().handlers + logging.getLogger("jobsys").handlers:
            if isinstance(h, logging.StreamHandler):
                h.setStream(log)
        store = Store(settings)
        for lo in range(0, args.jobs, 1000):
            hi = min(args.jobs, lo + 1000)
            store.submit_jobs([Submission("noop", seq) for seq in range(lo, hi)])
        worker = Worker(settings, store)
        redis_cpu0 = _redis_cpu(store)
        profiler = None if args.no_profile else cProfile.Profile()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        done = 0
        with lines_written_in_background():  # as in `Worker.run`
            while done < args.jobs:
                worker.run_once()
                worker.wait_async(60)
                done = worker.completed + worker.failed
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        redis_cpu = _redis_cpu(store) - redis_cpu0
        print(
            f"{args.jobs} {args.job} jobs, one worker thread, {args.log_level} logs"
            f"{'' if args.no_profile else ' (under cProfile: slower)'}:\n"
            f"  wall {wall:.2f} s = {args.jobs / wall:,.0f} jobs/s\n"
            f"  worker CPU {cpu * 1e6 / args.jobs:.1f} us/job, "
            f"Redis CPU {redis_cpu * 1e6 / args.jobs:.1f} us/job"
        )
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
            stats.print_stats(args.top)
            print(out.getvalue())
        if worker._aio is not None:
            worker._aio.stop(1.0)
        store.close()
    finally:
        server.stop()
    return 0


def _redis_cpu(store: object) -> float:
    info = store.redis.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


if __name__ == "__main__":
    sys.exit(main())
