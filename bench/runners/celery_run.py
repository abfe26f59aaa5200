"""Celery: app, task and producer. Workers: ``celery -A bench.runners.celery_run worker``."""

from __future__ import annotations

from celery import Celery

from bench.runners.common import redis_url, run_sync, work

# Celery's defaults otherwise: no result backend, prefetch multiplier 4, acks early.
app = Celery("bench", broker=redis_url())


@app.task
def noop(seq: int) -> None:
    work(seq)


def main(argv: list[str]) -> None:
    run_sync(noop.delay, argv)
