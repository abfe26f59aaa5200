"""Celery: `celery worker --pool solo` xW processes (prefork would add a parent per pool)."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    return [
        [
            str(bin_dir / "celery"),
            "-A",
            "bench.runners.celery_run",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-n",
            f"w{i}@%h",
        ]
        for i in range(count)
    ]


SYSTEM = System(
    name="celery",
    label="Celery (solo)",
    venv="celery",
    runner="celery",
    workers=_workers,
    setup=(
        "`celery worker --pool solo --loglevel INFO` xW processes; no result backend "
        "(Celery's default), prefetch multiplier 4 (default)"
    ),
)
