"""The harness's tools: the private Redis, worker processes, producers, job records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.runners.common import RECORD_BYTES
from bench.systems.base import System
from jobsys.local.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A run could not be completed (a process died, jobs never finished, ...)."""


@dataclass
class Bench:
    """What every run needs: the Redis, a client on it, and a scratch directory."""

    server: RedisServer
    client: redis.Redis
    scratch: Path
    run_no: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def fresh_dir(self, tag: str) -> Path:
        """A new, empty directory for one run's records and logs."""
        self.run_no += 1
        path = self.scratch / f"{self.run_no:03d}-{tag}"
        path.mkdir(parents=True)
        return path

    def flush(self) -> None:
        """Empty Redis and zero its command statistics (between every two runs)."""
        self.client.flushall()
        self.client.config_resetstat()

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def cpu_s(self) -> float:
        """CPU seconds the Redis server has used so far (user + system, INFO cpu)."""
        cpu = self.client.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def command_calls(self) -> dict[str, int]:
        """Calls per command so far (INFO commandstats), without the harness's own."""
        stats = self.client.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        for own in ("info", "config|resetstat", "flushall", "config", "ping"):
            calls.pop(own, None)
        return calls

    def env(self, out_dir: Path, system: System) -> dict[str, str]:
        """The environment of a system's producer and workers."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_", "JOBSYS_", "RQ_", "VIRTUAL_ENV"))
        }
        env.update(
            BENCH_REDIS_URL=self.url,
            BENCH_OUT_DIR=str(out_dir),
            REDIS_URL=self.url,  # jobsys
            RQ_REDIS_URL=self.url,  # `rq worker`
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
        )
        env.update(system.extra_env)
        return env


@contextmanager
def private_redis(scratch: Path) -> Iterator[Bench]:
    """A private redis-server on a free loopback port, without persistence."""
    server = RedisServer(scratch / "redis", appendonly=False).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        yield Bench(server, client, scratch)
    finally:
        client.close()
        server.stop()


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-command call counts between two `command_calls` snapshots (non-zero only)."""
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def run_producer(bench: Bench, system: System, out_dir: Path, *args: str) -> dict[str, Any]:
    """Run the system's producer to the end; return the JSON it reports."""
    log = out_dir / "producer.log"
    with log.open("ab") as err:
        done = subprocess.run(
            system.producer(*args),
            cwd=REPO,
            env=bench.env(out_dir, system),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise BenchError(f"{system.name} producer exited {done.returncode}; see {log}")
    lines = done.stdout.decode().strip().splitlines()
    return dict(json.loads(lines[-1]))


class Workers:
    """The worker processes of one system for one run (each in its own process group)."""

    def __init__(self, bench: Bench, system: System, count: int, out_dir: Path) -> None:
        self.system = system
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = out_dir / "workers.log"
        env = bench.env(out_dir, system)
        with self.log.open("ab") as log:
            for cmd in system.worker_commands(count):
                self.procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=REPO,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def check(self) -> None:
        """Raise if a worker process has exited."""
        for p in self.procs:
            if p.poll() is not None:
                raise BenchError(
                    f"{self.system.name} worker exited with {p.returncode}; see {self.log}"
                )

    def stop(self, graceful_s: float = 0.0) -> None:
        """SIGKILL every process group; with `graceful_s`, SIGTERM first and wait that long.

        The runs stop their workers only once every job has finished and settled, so
        a graceful stop (which takes up to a few seconds, differently per system)
        would only lengthen the run. Redis drops the killed clients' connections.
        """
        if graceful_s:
            for p in self.procs:
                _signal_group(p, signal.SIGTERM)
            deadline = time.monotonic() + graceful_s
            for p in self.procs:
                with suppress(subprocess.TimeoutExpired):
                    p.wait(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            _signal_group(p, signal.SIGKILL)  # also children that outlived their parent
            p.wait()
        time.sleep(0.1)  # let Redis notice the closed connections before it is measured


def _signal_group(p: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(p.pid, sig)


def records_done(out_dir: Path) -> int:
    """How many job records the workers have written so far."""
    total = 0
    for entry in os.scandir(out_dir):
        if entry.name.startswith("rec."):
            total += entry.stat().st_size
    return total // RECORD_BYTES


def wait_records(
    out_dir: Path, count: int, workers: Workers, timeout_s: float, poll_s: float = 0.002
) -> None:
    """Block until at least `count` records exist; raise after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    checks = 0
    while records_done(out_dir) < count:
        if time.monotonic() > deadline:
            raise BenchError(
                f"{workers.system.name}: only {records_done(out_dir)} of {count} jobs "
                f"ran within {timeout_s:.0f}s; see {workers.log}"
            )
        checks += 1
        if checks % 100 == 0:
            workers.check()
        time.sleep(poll_s)


def read_records(out_dir: Path) -> dict[int, int]:
    """seq → the earliest start time (ns) recorded for it; duplicates are counted apart."""
    starts: dict[int, int] = {}
    for path in out_dir.glob("rec.*"):
        for line in path.read_bytes().splitlines():
            seq_s, ns_s = line.split()
            seq, ns = int(seq_s), int(ns_s)
            if seq not in starts or ns < starts[seq]:
                starts[seq] = ns
    return starts


def count_records(out_dir: Path) -> int:
    """Every record written, duplicates included."""
    return records_done(out_dir)
