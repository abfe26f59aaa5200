"""Reading the per-queue event streams (``keys.events``; written by the Lua scripts,
see ``emit`` in lua/_lib.lua and docs/events.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from jobsys.models import FINAL_STATUSES
from jobsys.store import keys
from jobsys.store.translate import translate_errors

#: The event types, in the order of a job's life (docs/events.md).
EVENT_TYPES = (
    "queued",
    "scheduled",
    "waiting",
    "started",
    "progress",
    "retried",
    "completed",
    "failed",
    "dead_lettered",
    "cancelled",
    "expired",
)
#: The events after which a job never changes again (bar a dead-letter replay): the
#: event of each final status, named as the status is.
FINAL_EVENTS = frozenset(str(status) for status in FINAL_STATUSES)
#: The stream id before every entry: reading after it reads the whole stream.
ORIGIN = "0-0"
#: Alias exported by jobsys.store.
ORIGIN_EVENT_ID = ORIGIN


@dataclass(frozen=True)
class Event:
    """One entry of a queue's event stream."""

    queue: str
    #: The stream id, ``<ms>-<seq>``: ms is when it happened (Redis clock).
    id: str
    type: str
    job_id: str
    #: The other fields of the entry (``attempt``, ``progress``, ``replayed``).
    fields: Mapping[str, str]

    @property
    def at_ms(self) -> int:
        """When the change happened: ms since the epoch, Redis clock."""
        return int(self.id.partition("-")[0])


class EventLog:
    """The event streams of the queues, over one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def last_ids(self, queues: Sequence[str]) -> dict[str, str]:
        """The id of each queue's newest event (`ORIGIN` for an empty stream): reading
        after it yields only what happens from now on."""
        with translate_errors():
            pipe = self._client.pipeline(transaction=False)
            for q in queues:
                pipe.xrevrange(keys.events(q), count=1)
            answers = pipe.execute()
        return {q: (_text(a[0][0]) if a else ORIGIN) for q, a in zip(queues, answers, strict=True)}

    def read(self, after: Mapping[str, str], block_ms: int, count: int = 500) -> list[Event]:
        """The events after `after` ({queue: stream id}) of those queues, oldest first
        per queue, up to `count` per queue; waits up to `block_ms` (0: not at all) when
        there is none yet. An id older than the stream's oldest entry (trimmed) reads
        from its oldest entry."""
        streams: dict[Any, Any] = {keys.events(q): i for q, i in after.items()}
        names = {keys.events(q): q for q in after}
        with translate_errors():
            answer: Any = self._client.xread(
                streams, count=count, block=block_ms if block_ms > 0 else None
            )
        out: list[Event] = []
        for stream, entries in answer or []:
            queue = names[_text(stream)]
            for entry_id, raw in entries:
                fields = {_text(k): _text(v) for k, v in raw.items()}
                out.append(
                    Event(
                        queue=queue,
                        id=_text(entry_id),
                        type=fields.pop("type", ""),
                        job_id=fields.pop("job", ""),
                        fields=fields,
                    )
                )
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
