"""One structured log line per job event of a worker.

Every line carries the same fields, as ``extra`` (so ``LOG_FORMAT=json`` makes
them JSON keys, and text appends them as ``key=value``): ``event``, ``job_id``,
``task``, ``queue``, ``attempt``, ``worker``, ``duration_ms`` (once the handler
ran), and, when the job carries a W3C trace context, ``trace_id`` and
``traceparent``. Events: ``started``, ``completed``, ``retried``,
``dead_lettered``, ``cancelled``, ``released`` (handed back unfinished),
``lease_lost`` (the outcome was refused: another worker took the job over),
``recovered`` (another worker's expired lease taken back, see ``verdict``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from jobsys.store import Claimed

logger = logging.getLogger("jobsys.worker.events")


def trace_id(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C ``traceparent``, or None."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) >= 4 else None


def job_event(
    event: str,
    job: Claimed,
    queue: str,
    worker: str,
    *,
    duration_s: float | None = None,
    level: int = logging.INFO,
    message: str = "",
    **more: Any,
) -> None:
    """Log one event of `job`: ``job <id> <event>[ <message>]`` with the fields above."""
    if not logger.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "event": event,
        "job_id": job.id,
        "task": job.task,
        "queue": queue,
        "attempt": job.attempt,
        "worker": worker,
    }
    if duration_s is not None:
        fields["duration_ms"] = round(duration_s * 1000, 3)
    if job.traceparent:
        fields["trace_id"] = trace_id(job.traceparent)
        fields["traceparent"] = job.traceparent
    fields.update(more)
    args = (job.id, event.replace("_", "-"), f" {message}" if message else "")
    # `logger.log` would look up its caller by walking the stack (findCaller), a
    # good part of a record's cost; the caller is always this line of this function,
    # so the record is made with it as it is and handled the same way.
    line = sys._getframe().f_lineno
    record = logger.makeRecord(
        logger.name, level, __file__, line, "job %s %s%s", args, None, "job_event", fields
    )
    logger.handle(record)
