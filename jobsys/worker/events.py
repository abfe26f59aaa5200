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
import os
import threading
import time
from typing import Any

from jobsys.logs import only_plain_values
from jobsys.store import Claimed

logger = logging.getLogger("jobsys.worker.events")
only_plain_values(logger)  # job_event passes str, int and float values only


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
    logger.handle(_record(level, args, fields))


#: The text of every job event (its args: id, event, message).
_MSG = "job %s %s%s"
_local = threading.local()


def _record(level: int, args: tuple[Any, ...], fields: dict[str, Any]) -> logging.LogRecord:
    """A LogRecord of a job event, made as `logger.makeRecord` would, cheaper.

    `logger.log` would look up its caller by walking the stack (findCaller); the
    caller is always `job_event`, so the record names it as it is. And
    `LogRecord.__init__` works out, per record, what never changes for one thread of
    one process (file and module names, process and thread ids and names): the
    record copies those from a first record made the standard way for this thread
    and level, and sets only the time, the args and the fields. With a record
    factory other than LogRecord installed (which may add values of its own per
    record), every record is made by the factory.
    """
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return logger.makeRecord(logger.name, level, __file__, _LINE, _MSG, args, None,
                                 "job_event", fields)  # fmt: skip
    protos: dict[int, dict[str, Any]] | None = getattr(_local, "protos", None)
    if protos is None:
        protos = _local.protos = {}
    proto = protos.get(level)
    if proto is None:
        first = logger.makeRecord(logger.name, level, __file__, _LINE, _MSG, (), None, "job_event")
        proto = protos[level] = dict(vars(first))
    record: logging.LogRecord = _new_record(logging.LogRecord)
    d = record.__dict__
    d.update(proto)
    now = time.time()
    d["created"] = now
    d["msecs"] = int((now - int(now)) * 1000) + 0.0
    d["relativeCreated"] = (now - _START) * 1000
    d["args"] = args
    d.update(fields)
    return record


def _forget_prototypes() -> None:
    # A forked child has another pid (and its one thread another name): it makes
    # prototypes of its own.
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_prototypes)
_LINE = job_event.__code__.co_firstlineno
_START: float = getattr(logging, "_startTime", time.time())
_new_record = object.__new__
