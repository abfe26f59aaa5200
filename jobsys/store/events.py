"""Reading the per-queue event streams (``keys.events``; written by the Lua scripts,
see ``emit`` in lua/_lib.lua and docs/events.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from jobsys.models import FINAL_STATUSES
from jobsys.store import keys
from jobsys.store.cluster import one_slot
from jobsys.store.slots import queue_slot
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
#: Redis Cluster: how often a blocking read of queues in several slots looks again
#: (seconds; one XREAD cannot span slots, see `EventLog.read`).
CLUSTER_POLL_S = 0.1


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
        self._cluster = isinstance(client, redis.RedisCluster)

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
            if self._cluster and not one_slot(list(after)):
                answer: Any = self._read_slots(after, block_ms, count)
            else:
                answer = self._client.xread(
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

    def _read_slots(self, after: Mapping[str, str], block_ms: int, count: int) -> list[Any]:
        """Redis Cluster, queues in several slots: one XREAD per slot, in one cluster
        pipeline (a batch per shard), without BLOCK; when none has an event yet, again
        every `CLUSTER_POLL_S` until `block_ms` pass. The answer as one XREAD's."""
        by_slot: dict[int, dict[Any, Any]] = {}
        for q, i in after.items():
            by_slot.setdefault(queue_slot(q), {})[keys.events(q)] = i
        deadline = time.monotonic() + max(0, block_ms) / 1000
        while True:
            pipe = self._client.pipeline(transaction=False)
            for streams in by_slot.values():
                pipe.xread(streams, count=count)
            found = [pair for part in pipe.execute() for pair in _pairs(part)]
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            time.sleep(min(CLUSTER_POLL_S, left))


def _pairs(answer: Any) -> list[Any]:
    """The (stream, entries) pairs of an XREAD answer (a list, or a dict in RESP3)."""
    if not answer:
        return []
    return list(answer.items()) if isinstance(answer, dict) else list(answer)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
