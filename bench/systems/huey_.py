"""Huey: one `huey_consumer -k process -w W` (W worker processes plus the consumer's own)."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    module = "bench.runners.huey_run.huey"
    return [[str(bin_dir / "huey_consumer"), module, "-k", "process", "-w", str(count)]]


SYSTEM = System(
    name="huey",
    label="Huey",
    venv="huey",
    runner="huey",
    workers=_workers,
    setup=(
        "`huey_consumer -k process -w W` (W worker processes; the parent only "
        "schedules and supervises); RedisHuey defaults (blocking dequeue)"
    ),
)
