"""A job to submit (`Submission`), its new id, and its script argument (`job_arg`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from jobsys import stamps
from jobsys.store import keys
from jobsys.store.slots import queue_slot, steered_ids


@dataclass(slots=True)
class Submission:
    """One job to submit: its task and, optionally, its payload and limits.

    Nothing changes a Submission once it is made (`dataclasses.replace` makes a new
    one). It is not declared frozen all the same: a frozen dataclass sets each field
    through ``object.__setattr__``, which, for the one Submission of a plain
    ``POST /submit``, costs more than the rest of the request's bookkeeping in Python.
    """

    task: str
    payload: Any = None
    #: None: the job has a payload when `payload` is not None. True stores even a
    #: None payload (as JSON null).
    has_payload: bool | None = None
    #: None: MAX_RETRIES.
    max_retries: int | None = None
    priority: int = 0
    delay_s: float = 0.0
    run_at: datetime | None = None
    #: Longest one attempt may run; the handler then runs in a child process
    #: that is stopped when it overruns (None: no limit, runs in a thread).
    timeout_s: float | None = None
    #: W3C trace context (``traceparent`` header) the job belongs to, if any.
    traceparent: str | None = None
    #: Flow control (docs/flow-control.md): if the job has not started by then it
    #: never runs and ends `expired`; `ttl_s` counts from the submit (Redis clock);
    #: with both, the earlier counts.
    expires_at: datetime | None = None
    ttl_s: float | None = None
    #: Flow control: while a job of the queue with this key waits or runs (or within
    #: `unique_for_s` of the first submit), a submit with it queues nothing.
    unique_key: str | None = None
    unique_for_s: float | None = None
    #: Workflows: the ids of the jobs it waits for (each must exist, or come earlier
    #: in the same submit), and whether it runs when one of them does not complete
    #: ("run") or ends `cancelled` ("cancel"). See docs/workflows.md.
    depends_on: tuple[str, ...] = ()
    on_parent_failure: str = "cancel"
    #: Where to POST the job's end (a signed webhook; docs/events.md), if anywhere.
    callback_url: str | None = None
    #: Flow control: jobs with the same key are limited together by the queue's (or
    #: task's) concurrency limit, and keys are served round-robin.
    concurrency_key: str | None = None


@dataclass(frozen=True)
class Submitted:
    """What a submit did."""

    #: The jobs' ids, in the order given (a replay: the first request's).
    ids: list[str]
    #: Each job's status as the submit left it, decided in Redis by its clock:
    #: "queued" (ready now, a `run_at` in the past too) or "scheduled" (due later).
    #: A replay: as the first request left them.
    statuses: list[str]
    #: True when an Idempotency-Key named a repeat of an earlier request, which
    #: queued nothing.
    replayed: bool = False
    #: Flow control: True when a job with the same unique key held it, which queued
    #: nothing; `ids` and `statuses` are that job's (its current status).
    duplicate: bool = False
    #: For a duplicate: the task of the job that holds the key.
    task: str | None = None


#: Payloads as JSON text (one encoder: `json.dumps` with options builds one per call).
_dumps = json.JSONEncoder(separators=(",", ":")).encode

#: The UUID variant digit (10xx) for each hex digit of random bits.
_VARIANT = {f"{i:x}": f"{8 | (i & 3):x}" for i in range(16)}


def new_job_id(queue: str | None = None) -> str:
    """A new job id: a random (version 4) UUID in canonical text, as
    ``str(uuid.uuid4())`` writes it; in the cluster layout, one of `queue`'s slot
    (`slots.steered_ids`)."""
    if queue is not None and keys.cluster_layout():
        return steered_ids(queue_slot(queue), 1)[0]
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_job_ids(count: int, queue: str | None = None) -> list[str]:
    """`count` new job ids, as `new_job_id` makes them, from one read of the OS's
    random source."""
    if queue is not None and keys.cluster_layout():
        return steered_ids(queue_slot(queue), count)
    h = os.urandom(16 * count).hex()
    return [
        f"{h[o : o + 8]}-{h[o + 8 : o + 12]}-4{h[o + 13 : o + 16]}-"
        f"{_VARIANT[h[o + 16]]}{h[o + 17 : o + 20]}-{h[o + 20 : o + 32]}"
        for o in range(0, 32 * count, 32)
    ]


def job_arg(job_id: str, sub: Submission | tuple[str, Any], default_max_retries: int) -> str:
    """One job's ARGV in enqueue.lua and tick.lua: the one place a job (a
    `Submission`, or a ``(task, payload)`` pair whose None payload means "no
    payload") becomes a script argument.

    A JSON array ``[id, task, max_retries, priority, run_at_ms, delay_ms, timeout,
    traceparent, expires_at_ms, ttl_ms, callback_url, concurrency_key]`` whose
    fields after max_retries are left off its end while they hold their none-value
    (0, or ''): a plain job's array is ``[id, task, max_retries]``, and job_arg in
    _lib.lua fills the first five back in. Then, when the job has a payload, a
    newline and the payload's JSON text, which the script stores verbatim. Neither
    JSON text holds a raw newline (one inside a string is written ``\\n``; no indent),
    so the first newline ends the array. One argument per job, made by C encoders:
    redis-py encodes each argument in Python, which made nine per job the bulk of a
    submit's CPU time.
    """
    if type(sub) is tuple:  # (task, payload): every other field its default
        task, payload = sub
        has_payload = payload is not None
        fields = [job_id, task, default_max_retries]
    else:
        assert isinstance(sub, Submission)
        payload = sub.payload
        has_payload = payload is not None if sub.has_payload is None else sub.has_payload
        fields = [
            job_id,
            sub.task,
            default_max_retries if sub.max_retries is None else sub.max_retries,
            sub.priority,
            stamps.epoch_ms(sub.run_at) if sub.run_at is not None else 0,
            stamps.duration_ms(sub.delay_s) if sub.delay_s else 0,
            "" if sub.timeout_s is None else repr(float(sub.timeout_s)),
            sub.traceparent or "",
            # flow control (docs/flow-control.md)
            stamps.epoch_ms(sub.expires_at) if sub.expires_at is not None else 0,
            max(1, stamps.duration_ms(sub.ttl_s)) if sub.ttl_s is not None else 0,
            sub.callback_url or "",  # webhooks (docs/events.md)
            sub.concurrency_key or "",  # flow control (enqueue_flow.lua only)
        ]
        while len(fields) > 3 and not fields[-1]:  # none-values off the end (0, '')
            fields.pop()
    # The array (strs and ints only) by pydantic-core's encoder: compact, UTF-8 text as
    # it is (cjson passes it through), no raw newline; a fifth of `json`'s time.
    head = to_json(fields).decode()
    return f"{head}\n{_dumps(payload)}" if has_payload else head
