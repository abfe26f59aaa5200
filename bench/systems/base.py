"""What the harness knows of one system: its venv, its producer, its worker commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers


@dataclass(frozen=True)
class System:
    """One system under test (a peer, or jobsys itself).

    `workers(python, bin_dir, count)` returns the commands that together start
    `count` worker processes (one command that forks them, or one per process).
    """

    name: str
    label: str
    #: The peers venv it runs in (see bench.peers); None = the jobsys venv (this one).
    venv: str | None
    #: ``python -m bench.runners <runner>`` is its producer.
    runner: str
    workers: Callable[[Path, Path, int], list[list[str]]]
    #: How the worker processes are configured, for the report.
    setup: str
    #: Fraction of N used for drain runs (slow systems get fewer jobs, so a run
    #: stays short; the rate of a no-op drain hardly depends on N).
    drain_scale: float = 1.0
    #: Which workloads it takes part in.
    latency: bool = True
    scaling: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    def python(self) -> Path:
        """The interpreter that runs its producer and its workers."""
        return Path(sys.executable) if self.venv is None else peers.python(self.venv)

    def bin_dir(self) -> Path:
        """Where its console scripts (rq, celery, ...) are."""
        return self.python().parent

    def producer(self, *args: str) -> list[str]:
        """The command of its producer with runner arguments `args`."""
        return [str(self.python()), "-m", "bench.runners", self.runner, *args]

    def worker_commands(self, count: int) -> list[list[str]]:
        """Commands that start `count` worker processes in all."""
        return self.workers(self.python(), self.bin_dir(), count)
