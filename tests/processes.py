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


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    """Wait until `url` answers 200."""

    def up() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout, 0.1, what=url)
