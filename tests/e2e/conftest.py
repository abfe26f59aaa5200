"""Fixtures of the end-to-end tests (real processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsys.local.redis_server import RedisServer

from processes import Proc, start_worker, stop_gracefully


@pytest.fixture
def worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[Proc]:
    """One `jobsys worker` with fast timings, on the session's Redis."""
    proc = start_worker(redis_server.url, tmp_path / "worker.log")
    yield proc
    print(proc.output()[-3000:])
    stop_gracefully(proc)
