"""Helpers for end-to-end tests: run `jobsys` commands as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from jobsys.local.redis_server import free_port

TESTS_DIR = Path(__file__).parent


def process_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child: ours, minus REDIS_*, plus `env` and the test tasks."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JOBSYS_"))}
    base.update(env)
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), base.get("PYTHONPATH")]))
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base


class Proc:
    """A `python -m jobsys ...` child process whose output goes to a log file."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.args = args
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "jobsys", *args],
            env=process_env(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop for good: SIGKILL if it is still running. For teardown."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


class Procs:
    """The `jobsys` processes one test starts, each logging to its own file in
    `log_dir`. `stop_all` (for teardown) kills what still runs and prints the
    tail of every log, so a failing test shows what its processes said."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def start(self, args: list[str], env: Mapping[str, str], name: str) -> Proc:
        proc = Proc(args, env, self.log_dir / f"{name}-{len(self.started)}.log")
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.started:
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-3000:]}")


def wait_for(
    predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = ""
) -> float:
    """Poll until `predicate()` is truthy; return the seconds it took. Fails on timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_started(output: Callable[[], str], *job_ids: str, timeout: float = 10) -> None:
    """Wait until a worker's log (`output()`) says each job's handler started.

    A job is `processing` from its claim; a worker told to stop between claiming a
    job and starting it hands the job back unstarted. The `started` line is logged
    after that last check (written within 0.1 s), so a signal sent after it finds
    the job running.
    """
    wait_for(
        lambda: all(f"job {j} started" in output() for j in job_ids), timeout, what="jobs to start"
    )


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    """Wait until `url` answers 200."""

    def up() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout, 0.1, what=url)


#: A worker's environment with fast timings, for end-to-end tests.
FAST_WORKER_ENV = {
    "SIMULATED_WORK_SECONDS": "0.1",
    "RETRY_BACKOFF_SECONDS": "0.05",
    "WORKER_POLL_SECONDS": "0.2",
    "SHUTDOWN_GRACE_SECONDS": "5",
}


def run_jobsys(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobsys ARGS`` to completion (stdin empty), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        check=False,
        env=process_env(env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def stop_gracefully(proc: Proc, timeout: float = 15.0) -> None:
    """SIGTERM, wait for the exit, and make sure the process is gone."""
    proc.signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    finally:
        proc.stop()


def start_api(redis_url: str, log: Path, env: Mapping[str, str] | None = None) -> tuple[Proc, str]:
    """`jobsys api` on a free loopback port, answering /health: (its process, its base URL)."""
    port = free_port()
    proc = Proc(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        {"REDIS_URL": redis_url, "API_WORKERS": "1", "API_THREADS": "4", **(env or {})},
        log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=15)
    except AssertionError:
        proc.stop()
        raise AssertionError(f"`jobsys api` did not come up:\n{proc.output()[-3000:]}") from None
    return proc, url


def start_worker(redis_url: str, log: Path) -> Proc:
    """`jobsys worker` (concurrency 2, tasks of tests/sample_tasks.py) with fast timings."""
    return Proc(
        ["worker", "--concurrency", "2", "--tasks", "sample_tasks"],
        {"REDIS_URL": redis_url, **FAST_WORKER_ENV},
        log,
    )
