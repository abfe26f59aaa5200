"""Every system the benchmark knows, in report order."""

from __future__ import annotations

from bench.systems import arq_, celery_, dramatiq_, huey_, jobsys_, rq_, saq_
from bench.systems.base import System

ALL: dict[str, System] = {
    s.name: s
    for s in (
        jobsys_.SYSTEM,
        huey_.SYSTEM,
        dramatiq_.SYSTEM,
        saq_.SYSTEM,
        celery_.SYSTEM,
        rq_.SYSTEM,
        rq_.FORKING,
        arq_.SYSTEM,
    )
}
PEERS = [name for name in ALL if name != "jobsys"]

__all__ = ["ALL", "PEERS", "System"]
