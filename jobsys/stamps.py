"""Timestamps of a job hash: how they are stored, and how the API shows them.

Every time in a job hash (`created_at`, `started_at`, ..., `tick`) is written by
a Lua script from the Redis clock as ms since the epoch: 13 digits, stored by a
listpack as one 8-byte integer (10 bytes in all, against 26 for ISO-8601 text),
which keeps a finished job's hash in a smaller allocation. The API, the CLI and a job's ``history``
show ISO-8601 text; `stamp` makes it.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta


def stamp(value: str | None) -> str | None:
    """The ISO-8601 text (UTC, with ms: ``2026-11-27T21:45:03.123Z``) of a
    timestamp field of a job hash, as the API shows it.

    The hash holds ms since the epoch (13 digits: in a listpack 10 bytes instead
    of 26 for the text, which keeps a finished job's hash in a smaller allocation).
    Jobs written by versions before 0.2 hold the ISO text itself: returned as it is.
    """
    if value is None or not value.isdigit():
        return value
    ms = int(value)
    t = time.gmtime(ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms % 1000:03d}Z"
    )


def ms(value: str | bytes | None) -> int:
    """The ms since the epoch of a timestamp field of a job hash (0: none)."""
    if not value:
        return 0
    text = value.decode() if isinstance(value, bytes) else value
    if text.isdigit():
        return int(text)
    return round(datetime.fromisoformat(text).timestamp() * 1000)  # an earlier version's


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, any year (no overflow at
    the ends of the calendar, where converting to UTC would leave it). At least 1,
    so that a time before 1970 still counts as "given" and runs at once."""
    offset = when.utcoffset() or timedelta(0)
    days = when.toordinal() - _EPOCH_DAY
    seconds = days * 86400 + when.hour * 3600 + when.minute * 60 + when.second
    return max(1, round((seconds - offset.total_seconds()) * 1000 + when.microsecond / 1000))


def duration_ms(seconds: float) -> int:
    """A duration in seconds as whole milliseconds (0 for a negative one)."""
    return max(0, round(seconds * 1000))
