"""``python -m bench``: run every system through every workload; write bench/results/.

    python -m bench            # default: 10,000 jobs, 3 repeats, 2 worker processes (< 10 min)
    python -m bench --quick    # 2,000 jobs, no scaling workload (< 2 min once the venvs exist)
    python -m bench --smoke    # tiny: jobsys and Huey (jobsys alone without the network), for CI
    python -m bench --job incr # drains of jobs that each make one INCR on their own connection

See README.md ("Benchmarks") for what is measured and how.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import peers, report, workloads
from bench.harness import REPO, Bench, private_redis
from bench.systems import ALL, System


@dataclass(frozen=True)
class Plan:
    """What one invocation runs."""

    mode: str
    systems: list[str]
    jobs: int
    repeat: int
    workers: int
    latency_rate: float = 200.0
    latency_seconds: float = 5.0
    scaling: tuple[int, ...] = (1, 2, 4)
    http_seconds: float = 5.0
    http_connections: int = 16
    http_batch: int = 100
    submit_many_batch: int = 1000
    #: What each job does (bench.runners.common.JOB): noop, incr or async. A run of
    #: another job than noop runs the drain workload only.
    job: str = "noop"


MODES = {
    "default": Plan("default", list(ALL), jobs=10_000, repeat=3, workers=2, latency_seconds=4.0),
    "quick": Plan(
        "quick",
        [s for s in ALL if s != "rq-fork"],
        jobs=2_000,
        repeat=3,
        workers=2,
        latency_seconds=1.0,
        scaling=(),
        http_seconds=1.5,
    ),
    "smoke": Plan(
        "smoke",
        ["jobsys", "huey"],
        jobs=200,
        repeat=1,
        workers=2,
        latency_seconds=0.5,
        scaling=(),
        http_seconds=1.0,
    ),
}


def parse(argv: list[str] | None) -> tuple[Plan, Path, float]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a run of under two minutes")
    mode.add_argument("--smoke", action="store_true", help="a tiny run that proves the harness")
    p.add_argument("--systems", help=f"comma-separated, of: {','.join(ALL)}")
    p.add_argument("--jobs", type=int, help="N, jobs per drain run")
    p.add_argument("--repeat", type=int, help="runs of each workload (the median is reported)")
    p.add_argument("--workers", type=int, help="worker processes per system (2)")
    p.add_argument("--no-scaling", action="store_true", help="skip the 1/2/4-worker workload")
    p.add_argument(
        "--job",
        choices=JOBS,
        default="noop",
        help="what each job does: noop (default); incr, one INCR on the worker's own Redis "
        "connection; async, that INCR awaited in an async handler (systems with async "
        "handlers only). Not noop: drains only, results in <stem>-<job>.*",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results dir")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for the machine's other CPU load to drop",
    )
    args = p.parse_args(argv)
    plan = MODES["quick" if args.quick else "smoke" if args.smoke else "default"]
    if args.systems:
        names = [s.strip() for s in args.systems.split(",") if s.strip()]
        unknown = [s for s in names if s not in ALL]
        if unknown:
            p.error(f"unknown systems {unknown}; known: {','.join(ALL)}")
        plan = replace(plan, systems=names)
    if args.jobs:
        plan = replace(plan, jobs=args.jobs)
    if args.repeat:
        plan = replace(plan, repeat=args.repeat)
    if args.workers:
        plan = replace(plan, workers=args.workers)
    if args.no_scaling:
        plan = replace(plan, scaling=())
    if args.job != "noop":
        names = [n for n in plan.systems if args.job != "async" or n in ASYNC_SYSTEMS]
        plan = replace(plan, job=args.job, systems=names)
    return plan, args.out, args.wait_quiet


#: The jobs a run may be made of (see Plan.job).
JOBS = ("noop", "incr", "async")
#: The systems whose handlers can be async (the `async` job).
ASYNC_SYSTEMS = ("jobsys", "saq", "arq")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare(plan: Plan) -> tuple[list[System], list[str]]:
    """Build the peer venvs the plan needs; drop (with a note) those that cannot be built."""
    notes: list[str] = []
    systems: list[System] = []
    for name in plan.systems:
        system = ALL[name]
        if system.venv is not None:
            try:
                peers.ensure(system.venv)
            except (peers.PeerEnvError, OSError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                notes.append(f"{system.label} skipped: its venv could not be built ({first})")
                log(notes[-1])
                continue
        systems.append(system)
    return systems, notes


class Runner:
    """Runs the plan's workloads, keeping every result and every failure."""

    def __init__(self, plan: Plan, bench: Bench, systems: list[System], scratch: Path) -> None:
        self.plan, self.bench, self.systems, self.scratch = plan, bench, systems, scratch
        self.runs: dict[str, Any] = {
            "drain": {},
            "latency": {},
            "scaling": {},
            "batch": [],
            "http": None,
        }
        self.errors: list[str] = []

    def attempt(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`, or None after logging the failure (one failed run loses no other)."""
        try:
            return fn(*args)
        except Exception as e:  # any failure of one run: record it and go on
            self.errors.append(f"{what}: {e}")
            log(f"FAILED {what}: {e}")
            with (self.scratch / "errors.log").open("a") as f:
                f.write(traceback.format_exc())
            return None

    def all(self) -> None:
        self.drains()
        if self.plan.job != "noop":
            return
        self.latencies()
        if any(s.name == "jobsys" for s in self.systems):
            self.submit_paths()
        self.scaling()

    def drains(self) -> None:
        plan = self.plan
        # Systems take turns within each repeat, so slow drifts of the machine spread evenly.
        for rep in range(plan.repeat):
            for s in self.systems:
                n = drain_n(plan, s)
                log(f"drain {s.name} run {rep + 1}/{plan.repeat}: {n} jobs, {plan.workers} workers")
                r = self.attempt(f"drain {s.name}", workloads.drain, self.bench, s, n, plan.workers)
                if r:
                    self.runs["drain"].setdefault(s.name, []).append(r)
                    log(
                        f"  enqueue {r['enqueue_per_s']:,.0f}/s  drain {r['drain_per_s']:,.0f}/s"
                        f"  (start-up {r['startup_s']:.1f}s)"
                    )

    def latencies(self) -> None:
        plan = self.plan
        for s in (s for s in self.systems if s.latency):
            log(
                f"latency {s.name}: {plan.repeat} x {plan.latency_seconds:g}s "
                f"at {plan.latency_rate:.0f}/s"
            )
            args = (plan.latency_rate, plan.latency_seconds, plan.repeat, plan.workers)
            r = self.attempt(f"latency {s.name}", workloads.latency, self.bench, s, *args)
            if r:
                self.runs["latency"][s.name] = r
                log("  p50 " + " ".join(f"{w['p50_ms']:.2f}" for w in r) + " ms")

    def submit_paths(self) -> None:
        """jobsys only: Store.submit_many, and the HTTP API."""
        plan = self.plan
        n = max(1000, plan.jobs * 5)
        size = plan.submit_many_batch
        for rep in range(plan.repeat):
            log(f"jobsys Store.submit_many run {rep + 1}: {n} jobs, {size} per call")
            r = self.attempt("submit_many", workloads.batch, self.bench, ALL["jobsys"], n, size)
            if r is None:
                break
            if "skipped" in r:
                log(f"  skipped: {r['skipped']}")
                break
            self.runs["batch"].append(r)
            log(f"  {r['enqueue_per_s']:,.0f} jobs/s")
        log(
            f"jobsys HTTP: {plan.repeat} x {plan.http_seconds:g}s, "
            f"{plan.http_connections} connections"
        )
        args = (plan.http_seconds, plan.http_connections, plan.repeat, plan.http_batch)
        r = self.attempt("http", workloads.http_submit, self.bench, *args)
        if r:
            self.runs["http"] = r
            single = " ".join(f"{x['requests_per_s']:,.0f}/s" for x in r["single"])
            batch = " ".join(f"{x['jobs_per_s']:,.0f}/s" for x in r["batch"]) or "(none)"
            log(f"  tool={r['tool']} single {single}; batch jobs {batch}")

    def scaling(self) -> None:
        plan = self.plan
        for count in (c for c in plan.scaling if c != plan.workers):
            for rep in range(plan.repeat):
                for s in (s for s in self.systems if s.scaling):
                    n = max(100, drain_n(plan, s) // 4)
                    log(f"scaling {s.name} {count} workers run {rep + 1}: {n} jobs")
                    r = self.attempt(f"scaling {s.name} x{count}", workloads.drain,
                                     self.bench, s, n, count)  # fmt: skip
                    if r:
                        by_count = self.runs["scaling"].setdefault(s.name, {})
                        by_count.setdefault(str(count), []).append(r)
                        log(f"  drain {r['drain_per_s']:,.0f}/s")


def main(argv: list[str] | None = None) -> int:
    plan, out_dir, wait_quiet_s = parse(argv)
    os.environ["BENCH_JOB"] = plan.job  # to every producer and worker (Bench.env)
    systems, notes = prepare(plan)
    deadline = time.monotonic() + wait_quiet_s
    if wait_quiet_s:
        log(f"waiting up to {wait_quiet_s:g}s for the machine to be quiet (--wait-quiet)")
    while time.monotonic() < deadline and cpu_busy(2.0) > BUSY_WARNING:
        pass
    started = time.monotonic()
    if plan.mode == "smoke" and not any(s.venv for s in systems):
        notes.append("smoke run of jobsys only: no peer venv could be built (no network?)")
    scratch = Path(tempfile.mkdtemp(prefix="jobsys-bench-"))
    names = ",".join(s.name for s in systems)
    log(
        f"mode={plan.mode} job={plan.job} systems={names} N={plan.jobs} repeat={plan.repeat} "
        f"workers={plan.workers}; logs in {scratch} (deleted unless a run fails)"
    )
    busy = cpu_busy()
    if busy > BUSY_WARNING:
        notes.append(
            f"the machine was {busy:.0%} busy with other work just before this run: "
            "expect noisier numbers than on a quiet machine"
        )
        log(f"warning: {notes[-1]}")
    with private_redis(scratch) as bench:
        meta = describe(plan, bench, systems)
        meta["cpu_busy_before"] = round(busy, 3)
        runner = Runner(plan, bench, systems, scratch)
        runner.all()
    meta["duration_s"] = round(time.monotonic() - started, 1)
    meta["notes"] = notes
    meta["errors"] = runner.errors
    paths = report.write(out_dir, meta, runner.runs, systems)
    log(f"done in {meta['duration_s']:.0f}s: " + ", ".join(str(p) for p in paths))
    if runner.errors:
        log(f"{len(runner.errors)} run(s) failed; details and logs in {scratch}")
        return 1
    shutil.rmtree(scratch, ignore_errors=True)  # logs are kept only when a run failed
    return 0


#: Share of the CPUs busy before the run above which the report warns of noise.
BUSY_WARNING = 0.15


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over `seconds` (from /proc/stat; 0 where there is none)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (busy1 - busy0) / max(1, total1 - total0)


def drain_n(plan: Plan, system: System) -> int:
    return max(100, round(plan.jobs * system.drain_scale))


def describe(plan: Plan, bench: Bench, systems: list[System]) -> dict[str, Any]:
    """The facts of the machine and the run that the report's header states."""
    server = bench.client.info("server")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": plan.mode,
        "job": plan.job,
        "jobs": plan.jobs,
        "repeat": plan.repeat,
        "workers": plan.workers,
        "latency_rate": plan.latency_rate,
        "latency_seconds": plan.latency_seconds,
        "http_seconds": plan.http_seconds,
        "http_connections": plan.http_connections,
        "http_batch": plan.http_batch,
        "submit_many_batch": plan.submit_many_batch,
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "redis": f"{server.get('redis_version')} ({Path(bench.server.binary).name}), "
        "appendonly no, no RDB snapshots",
        "jobsys_commit": _git_commit(),
        "versions": {s.name: _versions(s) for s in systems},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "jobsys") else "")


def _versions(system: System) -> str:
    if system.venv is None:
        from jobsys import __version__  # noqa: PLC0415

        return f"jobsys {__version__} ({_git_commit()})"
    return " ".join(peers.PINS[system.venv])


if __name__ == "__main__":
    sys.exit(main())
