"""Periodic jobs: cron schedules declared beside the handlers or through the API.

Every worker runs the scheduler once a second: for each schedule it finds the
latest tick due by the Redis clock and calls tick.lua, which enqueues that
tick's job only if no one has yet, so each tick makes exactly one job however
many workers run. Ticks missed while no worker ran are coalesced: when workers
come back, the schedule gets one job for its latest tick, not one per missed
tick. Times are UTC.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from jobsys.models import check_queue_name

_code: dict[str, Schedule] = {}
_lock = threading.Lock()


def check_cron(expr: str) -> str:
    """`expr` if it is a valid cron expression, else ValueError: five fields
    (minute hour day month weekday), or six with seconds last."""
    if len(expr.split()) not in (5, 6) or not croniter.is_valid(expr):
        raise ValueError(
            "must be a cron expression of five fields (minute hour day month weekday), "
            "or six with seconds last, e.g. */5 * * * *"
        )
    return expr


@dataclass(frozen=True)
class Schedule:
    """One periodic job: enqueue `task` with `payload` into `queue` at every tick of `cron`."""

    name: str
    cron: str
    task: str
    payload: Any = None
    queue: str = "default"
    #: "code" (declared beside the handlers) or "api" (POST /schedules).
    source: str = "api"

    def __post_init__(self) -> None:
        check_cron(self.cron)
        check_queue_name(self.name)
        check_queue_name(self.queue)

    def latest_tick(self, now: datetime) -> datetime:
        """The latest tick at or before `now` (aware, UTC)."""
        # get_prev is strictly before its start: nudge it so `now` itself counts.
        prev: datetime = croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)
        return prev

    def next_tick(self, now: datetime) -> datetime:
        """The first tick after `now`."""
        nxt: datetime = croniter(self.cron, now).get_next(datetime)
        return nxt

    def to_json(self) -> str:
        """The form kept in the Redis hash ``jobsys:schedules``."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """The inverse of `to_json`."""
        return cls(**json.loads(text))

    def to_api(self, now: datetime | None = None) -> dict[str, Any]:
        """The JSON form of `GET /schedules`."""
        out: dict[str, Any] = asdict(self)
        out["next_run_at"] = self.next_tick(now or datetime.now(UTC)).isoformat()
        return out


def periodic(
    cron: str, task: str, payload: Any = None, *, queue: str = "default", name: str | None = None
) -> Schedule:
    """Declare a periodic job beside the handlers (workers register it at start).

    `name` defaults to the task name; a later declaration with the same name wins.
    """
    schedule = Schedule(name or task, cron, task, payload, queue, source="code")
    with _lock:
        _code[schedule.name] = schedule
    return schedule


def declared() -> list[Schedule]:
    """The schedules declared in code, by name."""
    with _lock:
        return sorted(_code.values(), key=lambda s: s.name)


def ms(when: datetime) -> int:
    """Milliseconds since the epoch."""
    return round(when.timestamp() * 1000)


__all__ = ["Schedule", "check_cron", "declared", "ms", "periodic"]
