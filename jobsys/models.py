"""Job, JobStatus and their JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job is in its life (the hash field ``status``)."""

    #: Waiting to run: in its queue's ready set, or (with ``next_attempt_at``)
    #: waiting out a retry backoff in the scheduled set.
    QUEUED = "queued"
    #: Leased to a worker that is running it.
    PROCESSING = "processing"
    #: Finished; ``result`` holds the handler's return value.
    COMPLETED = "completed"
    #: Every attempt failed; ``error`` holds the last error; the id is in ``dead_letter``.
    FAILED = "failed"


#: Hash fields that hold JSON text rather than plain strings.
JSON_FIELDS = frozenset({"payload", "result"})
#: Hash fields that hold whole numbers.
INT_FIELDS = frozenset({"attempts", "max_retries"})
#: The fields `GET /jobs/<id>` shows, in order; absent ones are left out.
API_FIELDS = (
    "id",
    "status",
    "task",
    "queue",
    "payload",
    "created_at",
    "attempts",
    "max_retries",
    "started_at",
    "worker",
    "next_attempt_at",
    "result",
    "completed_at",
    "error",
    "failed_at",
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
    payload: Any = None
    has_payload: bool = False
    started_at: str | None = None
    worker: str | None = None
    next_attempt_at: str | None = None
    result: Any = None
    has_result: bool = False
    completed_at: str | None = None
    error: str | None = None
    failed_at: str | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Job:
        """Build a Job from the decoded fields of its Redis hash."""
        return cls(
            id=fields["id"],
            status=JobStatus(fields["status"]),
            task=fields["task"],
            queue=fields.get("queue", "default"),
            created_at=fields["created_at"],
            attempts=int(fields.get("attempts", "0")),
            max_retries=int(fields.get("max_retries", "0")),
            payload=json.loads(fields["payload"]) if "payload" in fields else None,
            has_payload="payload" in fields,
            started_at=fields.get("started_at"),
            worker=fields.get("worker"),
            next_attempt_at=fields.get("next_attempt_at"),
            result=json.loads(fields["result"]) if "result" in fields else None,
            has_result="result" in fields,
            completed_at=fields.get("completed_at"),
            error=fields.get("error"),
            failed_at=fields.get("failed_at"),
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
