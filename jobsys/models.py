"""Job, JobStatus and their JSON form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from jobsys.stamps import stamp

#: The queue a job goes to when its submit names none.
DEFAULT_QUEUE = "default"


class JobStatus(StrEnum):
    """Where a job is in its life (the hash field ``status``)."""

    #: Waiting to run: in its queue's ready set, or (with ``next_attempt_at``)
    #: waiting out a retry backoff in the scheduled set.
    QUEUED = "queued"
    #: Submitted with a delay or a ``run_at``: waits in the scheduled set until
    #: its due time (``run_at``), then becomes ``queued``.
    SCHEDULED = "scheduled"
    #: Leased to a worker that is running it.
    PROCESSING = "processing"
    #: Finished; ``result`` holds the handler's return value.
    COMPLETED = "completed"
    #: Every attempt failed; ``error`` holds the last error; the id is in ``dead_letter``.
    FAILED = "failed"
    #: Cancelled (``POST /jobs/<id>/cancel``): before it ran, or stopped while running.
    CANCELLED = "cancelled"


#: Lowest and highest job priority; higher runs first, 0 is the default.
MIN_PRIORITY, MAX_PRIORITY = -100, 100
#: A queue name: 1 to 64 of these characters (no braces: the name sits inside a
#: Redis Cluster hash tag).
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)


def check_queue_name(name: str) -> str:
    """`name` if it is a valid queue name, else ValueError naming the rule."""
    if not _QUEUE_NAME.fullmatch(name):
        raise ValueError("must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
    return name


#: The fields `GET /jobs/<id>` shows, in order; absent ones are left out.
API_FIELDS = (
    "id",
    "status",
    "task",
    "queue",
    "priority",
    "payload",
    "created_at",
    "run_at",
    "schedule",
    "tick",
    "timeout_seconds",
    "attempts",
    "max_retries",
    "started_at",
    "worker",
    "progress",
    "progress_message",
    "next_attempt_at",
    "result",
    "completed_at",
    "error",
    "failed_at",
    "cancel_requested",
    "cancelled_at",
    "history",
    "replayed",
    "replayed_at",
    "traceparent",
)


@dataclass(frozen=True)
class Job:
    """One job as stored in its hash ``job:<id>``."""

    id: str
    status: JobStatus
    task: str
    queue: str
    created_at: str
    attempts: int = 0
    max_retries: int = 0
    priority: int = 0
    run_at: str | None = None
    schedule: str | None = None
    tick: str | None = None
    timeout_seconds: float | None = None
    payload: Any = None
    has_payload: bool = False
    started_at: str | None = None
    worker: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    next_attempt_at: str | None = None
    result: Any = None
    has_result: bool = False
    completed_at: str | None = None
    error: str | None = None
    failed_at: str | None = None
    #: True while a running job's cancellation is pending (None otherwise: not shown).
    cancel_requested: bool | None = None
    cancelled_at: str | None = None
    #: The failed attempts, oldest first (at most the last 20): attempt, worker,
    #: started_at, ended_at, error each.
    history: list[dict[str, Any]] | None = None
    #: Times the job was retried from the dead letter (None: never).
    replayed: int | None = None
    replayed_at: str | None = None
    #: W3C trace context the job was submitted with, when any.
    traceparent: str | None = None

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[str, str]) -> Job:
        """Build a Job from the decoded fields of its Redis hash ``job:<job_id>``."""
        return cls(
            id=job_id,
            status=JobStatus(fields["status"]),
            task=fields["task"],
            queue=fields.get("queue", "default"),
            created_at=cast(str, stamp(fields["created_at"])),
            attempts=int(fields.get("attempts", "0")),
            max_retries=int(fields.get("max_retries", "0")),
            priority=int(fields.get("priority", "0")),
            run_at=stamp(fields.get("run_at")),
            schedule=fields.get("schedule"),
            tick=stamp(fields.get("tick")),
            timeout_seconds=float(fields["timeout_seconds"])
            if "timeout_seconds" in fields
            else None,
            progress=float(fields["progress"]) if "progress" in fields else None,
            progress_message=fields.get("progress_message"),
            payload=json.loads(fields["payload"]) if "payload" in fields else None,
            has_payload="payload" in fields,
            started_at=stamp(fields.get("started_at")),
            worker=fields.get("worker"),
            next_attempt_at=stamp(fields.get("next_attempt_at")),
            result=json.loads(fields["result"]) if "result" in fields else None,
            has_result="result" in fields,
            completed_at=stamp(fields.get("completed_at")),
            error=fields.get("error"),
            failed_at=stamp(fields.get("failed_at")),
            cancel_requested=True if "cancel_requested" in fields else None,
            cancelled_at=stamp(fields.get("cancelled_at")),
            history=json.loads(fields["history"]) if "history" in fields else None,
            replayed=int(fields["replayed"]) if "replayed" in fields else None,
            replayed_at=stamp(fields.get("replayed_at")),
            traceparent=fields.get("traceparent"),
        )

    def to_api(self) -> dict[str, Any]:
        """The JSON object `GET /jobs/<id>` answers with (unset fields left out)."""
        out: dict[str, Any] = {}
        for name in API_FIELDS:
            value = getattr(self, name)
            if name in ("payload", "result"):
                # JSON values: an explicit null is shown, an absent one is not.
                if getattr(self, f"has_{name}"):
                    out[name] = value
            elif value is not None:
                out[name] = str(value) if isinstance(value, JobStatus) else value
        return out
