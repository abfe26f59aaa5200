"""``GET /events``: the queues' event streams as Server-Sent Events (docs/events.md).

Each SSE message is one event::

    id: 1765092000123-0
    event: completed
    data: {"id": "1765092000123-0", "type": "completed", "job_id": "...", "queue": "default", ...}

With several queues the ``id:`` holds every queue's position
(``q1=<id>,q2=<id>``), so a reconnection with ``Last-Event-ID`` resumes each
stream where it stopped. A comment line (``: keep-alive``) goes out every
`KEEPALIVE_S` when nothing happens, so proxies keep the connection and a client
that left is noticed. Each connected client holds one Redis connection, blocking
in XREAD for at most `BLOCK_MS` at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from jobsys import stamps
from jobsys.api import operations as doc
from jobsys.api import routes, validation
from jobsys.api.event_query import QUEUE_NAME, STREAM_ID, EventsQuery
from jobsys.api.headers import param
from jobsys.errors import InvalidJob
from jobsys.store import Event, EventLog

bp = Blueprint("events", __name__)

#: Longest blocking read of a stream (ms): under the API's socket timeout.
BLOCK_MS = 1000
#: A comment line is sent after this long without an event (seconds).
KEEPALIVE_S = 15.0
#: Most events read from Redis per queue at once.
READ_COUNT = 500
#: Tells a browser's EventSource how long to wait before it reconnects (ms).
RETRY_MS = 1000


def positions(last_event_id: str | None, queues: list[str]) -> dict[str, str] | None:
    """The stream position of each queue in a ``Last-Event-ID`` (None: none given).

    One queue: the stream id. Several: ``q=<id>`` pairs separated by commas; a queue
    it does not name starts from now (the caller fills it in).

    Raises:
        InvalidJob: the header is not of that form (a 400 naming ``Last-Event-ID``).
    """
    if last_event_id is None or last_event_id == "":
        return None
    rule = "must be the id of an event of this stream (as sent in `id:`)"
    if len(queues) == 1:
        if not STREAM_ID.fullmatch(last_event_id):
            raise InvalidJob("Last-Event-ID", rule)
        return {queues[0]: last_event_id}
    out: dict[str, str] = {}
    for part in last_event_id.split(","):
        queue, sep, sid = part.partition("=")
        if not sep or not STREAM_ID.fullmatch(sid) or not QUEUE_NAME.fullmatch(queue):
            raise InvalidJob("Last-Event-ID", rule)
        if queue in queues:
            out[queue] = sid
    return out


def event_id(cursor: dict[str, str], queues: list[str]) -> str:
    """The SSE ``id:`` of a position: the stream id for one queue, else ``q=<id>,...``."""
    if len(queues) == 1:
        return cursor[queues[0]]
    return ",".join(f"{q}={cursor[q]}" for q in queues)


def event_json(event: Event) -> dict[str, Any]:
    """The ``data:`` of one event."""
    body: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "job_id": event.job_id,
        "queue": event.queue,
        "at": stamps.stamp(str(event.at_ms)),
    }
    for name, value in event.fields.items():
        body[name] = float(value) if name == "progress" else int(value)
    return body


def stream(
    log: EventLog, queues: list[str], cursor: dict[str, str], types: frozenset[str] | None
) -> Iterator[str]:
    """The SSE text, message by message, from `cursor` on, until the client leaves."""
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = time.monotonic()
    while True:
        events = log.read(cursor, BLOCK_MS, READ_COUNT)
        out: list[str] = []
        for event in events:
            cursor[event.queue] = event.id
            if types is None or event.type in types:
                data = json.dumps(event_json(event), separators=(",", ":"))
                out.append(f"id: {event_id(cursor, queues)}\nevent: {event.type}\ndata: {data}\n\n")
        if out:
            quiet_since = time.monotonic()
            yield "".join(out)
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"


@bp.get("/events")
@doc.operation(
    "streamEvents",
    {"200": ("An endless `text/event-stream`.", None)},
    {"400": "BadQuery", **doc.READ},
    params=(
        *doc.query_params(EventsQuery),
        param("header", "Last-Event-ID", None, type="string"),
    ),
    extra={"content": {"text/event-stream": {"schema": {"type": "string"}}}},
)
def events() -> Response:
    """The events of one or more queues, as Server-Sent Events

    Every state change of a job of the queue(s) from now on, or after
    `Last-Event-ID` (the `id:` of the last event a client received) within the
    retained window (`EVENTS_MAX_LEN` events per queue). Each message: `id:`,
    `event:` (the type) and `data:` (JSON: `id`, `type`, `job_id`, `queue`, `at`, and
    `attempt`, `progress`, `replayed` where they apply). See docs/events.md.
    """
    q = validation.list_query(request, EventsQuery)
    queues = q.queues()
    given = positions(request.headers.get("Last-Event-ID"), queues)
    log = routes.state().store.events
    cursor = dict(given or {})
    missing = [name for name in queues if name not in cursor]
    if missing:
        cursor |= log.last_ids(missing)  # from now on
    response = Response(stream(log, queues, cursor, q.type_set()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
