"""arq: `arq WorkerSettings` xW processes (arq has no multi-process option)."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    cmd = [str(bin_dir / "arq"), "bench.runners.arq_run.WorkerSettings"]
    return [cmd for _ in range(count)]


SYSTEM = System(
    name="arq",
    label="arq",
    venv="arq",
    runner="arq",
    workers=_workers,
    setup="`arq WorkerSettings` xW processes; defaults (max_jobs 10, poll_delay 0.5 s)",
    drain_scale=0.25,
)
