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
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

from jobsys.models import check_queue_name

_code: dict[str, Schedule] = {}
_lock = threading.Lock()


def _field(number: str) -> str:
    element = rf"(?:\*|(?:{number})(?:-(?:{number}))?)(?:/[1-9][0-9]{{0,2}})?"
    return rf"{element}(?:,{element})*"


_SIXTY = r"[1-5]?[0-9]"
#: The cron expressions jobsys takes, exactly: five numeric fields (minute 0-59,
#: hour 0-23, day 1-31, month 1-12, weekday 0-7 with 0 and 7 Sunday), each a list
#: of `*`, numbers or ranges, each with an optional /step; then optionally a sixth
#: field, seconds 0-59. Fields are separated by one space.
CRON_PATTERN = (
    "^"
    + " ".join(
        _field(n)
        for n in (_SIXTY, r"1?[0-9]|2[0-3]", r"[1-9]|[12][0-9]|3[01]", r"[1-9]|1[0-2]", "[0-7]")
    )
    + f"(?: {_field(_SIXTY)})?$"
)
_CRON = re.compile(CRON_PATTERN)


def check_cron(expr: str) -> str:
    """`expr` if it matches `CRON_PATTERN`, else ValueError naming the rule."""
    if not _CRON.fullmatch(expr) or not croniter.is_valid(expr):
        raise ValueError(
            "must be a cron expression of five numeric fields (minute hour day month "
            "weekday) separated by single spaces, or six with seconds last, e.g. */5 * * * *"
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

    def latest_tick(self, now: datetime) -> datetime | None:
        """The latest tick at or before `now` (aware, UTC); None when there is none
        (an expression such as ``0 0 31 2 *`` matches no date)."""
        try:
            # get_prev is strictly before its start: nudge it so `now` itself counts.
            prev: datetime = croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)
        except CroniterBadDateError:
            return None
        return prev

    def next_tick(self, now: datetime) -> datetime | None:
        """The first tick after `now`; None when the expression matches no date."""
        try:
            nxt: datetime = croniter(self.cron, now).get_next(datetime)
        except CroniterBadDateError:
            return None
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
        nxt = self.next_tick(now or datetime.now(UTC))
        out["next_run_at"] = nxt.isoformat() if nxt is not None else None
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


__all__ = ["Schedule", "check_cron", "declared", "periodic"]
