"""saq: one `saq SETTINGS --workers W`."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    return [[str(bin_dir / "saq"), "bench.runners.saq_run.settings", "--workers", str(count)]]


SYSTEM = System(
    name="saq",
    label="saq",
    venv="saq",
    runner="saq",
    workers=_workers,
    setup="`saq settings --workers W`; defaults (concurrency 10 per process)",
)
