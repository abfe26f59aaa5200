"""Dramatiq: one `dramatiq --processes W` (its default 8 threads per process)."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    return [[str(bin_dir / "dramatiq"), "bench.runners.dramatiq_run", "--processes", str(count)]]


SYSTEM = System(
    name="dramatiq",
    label="Dramatiq",
    venv="dramatiq",
    runner="dramatiq",
    workers=_workers,
    setup=(
        "`dramatiq --processes W`, default 8 threads per process and default middleware. "
        "With `--threads 1` it drains ~8x slower (it prefetches 2 messages per thread), "
        "so the default is the fair setting"
    ),
)
