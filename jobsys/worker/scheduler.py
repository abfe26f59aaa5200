"""The scheduler every worker runs once a second: one job per tick of each schedule."""

from __future__ import annotations

import logging
from datetime import datetime

from jobsys.schedules import declared
from jobsys.store import Store

logger = logging.getLogger(__name__)


class Scheduler:
    """Enqueues due ticks of the periodic schedules (exactly once: see tick.lua)."""

    def __init__(self, store: Store) -> None:
        self.schedules = store.schedules
        self._registered = False
        #: The latest tick this worker has handed to tick.lua, per schedule, so it
        #: asks Redis once per tick rather than once per second.
        self._handled: dict[str, datetime] = {}

    def run_once(self) -> list[tuple[str, str]]:
        """Handle the latest due tick of every schedule: [(name, verdict)] for the
        ticks handed to Redis this time. Raises `StoreUnavailable`."""
        if not self._registered:
            self.schedules.put_all(declared())
            self._registered = True
        now = self.schedules.now()
        handled = []
        for schedule in self.schedules.all():
            tick = schedule.latest_tick(now)
            if tick is None or self._handled.get(schedule.name) == tick:
                continue
            verdict = self.schedules.tick(schedule, tick)
            self._handled[schedule.name] = tick
            if verdict == "enqueued":
                logger.info(
                    "schedule %s: queued %s for the tick of %s",
                    schedule.name, schedule.task, tick.isoformat(),
                )  # fmt: skip
            handled.append((schedule.name, verdict))
        return handled
