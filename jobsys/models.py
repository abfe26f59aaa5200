"""Job, JobStatus and their JSON form."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Required

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
)
from typing_extensions import TypedDict

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
    #: Not started by its ``expires_at`` (given at submit as ``expires_at`` or
    #: ``ttl_seconds``): it never runs (docs/flow-control.md).
    EXPIRED = "expired"
    #: Waits for its parents (``depends_on``) to complete, or, a batch's callback, for
    #: its batch to end; then becomes ``queued`` (docs/workflows.md).
    WAITING = "waiting"


#: The statuses a job never leaves (bar a retry from the dead letter): the long-poll
#: answers on them, and `Client.wait` stops on them. (A StrEnum: equal to its text.)
FINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


#: Lowest and highest job priority; higher runs first, 0 is the default.
MIN_PRIORITY, MAX_PRIORITY = -100, 100
#: A queue name: 1 to 64 of these characters (no braces: the name sits inside a
#: Redis Cluster hash tag).
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
#: A W3C trace context as jobs keep it (version 00: version-traceid-parentid-flags).
TRACEPARENT_PATTERN = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def check_queue_name(name: str) -> str:
    """`name` if it is a valid queue name, else ValueError naming the rule."""
    if not _QUEUE_NAME.fullmatch(name):
        raise ValueError("must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
    return name


def never_null(schema: dict[str, Any]) -> None:
    """Document that an answer holds its fields only, and that an optional field is
    left out when None, never sent as null: its schema is the value's own type, with
    no default. (Required fields may be null where their type says so.)"""
    schema["additionalProperties"] = False
    required = schema.get("required", [])
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            continue
        branches = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:
            prop.update(branches[0] | prop)  # the field's own description wins
        elif branches:
            prop["anyOf"] = branches
        if "default" in prop and prop["default"] is None:
            del prop["default"]


def _is_none(value: Any) -> bool:
    return value is None


class ApiModel(BaseModel):
    """A JSON object the API answers with: no other fields, and an optional field that
    is None left out (but see `ShownWhenSet`).

    pydantic leaves such a field out itself: each gets ``exclude_if`` when its class
    is made, so making an answer runs no Python of ours per object.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=never_null)

    #: Fields whose null is a value (shown when it was set), not the absence of one
    #: (`ShownWhenSet`).
    null_when_set: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        left_out = [
            field
            for name, field in cls.__pydantic_fields__.items()
            if not (field.is_required() or name in cls.null_when_set or field.exclude_if)
        ]
        for field in left_out:
            field.exclude_if = _is_none
        if left_out:
            cls.model_rebuild(force=True)

    def to_api(self) -> dict[str, Any]:
        """The JSON object of the answer."""
        return self.model_dump(mode="json")

    def to_api_json(self) -> bytes:
        """The answer as JSON text, in one call to pydantic: compact, every character
        past ASCII escaped, a newline after it. For an answer whose values are
        integers, booleans, null and printable text (`str.isprintable`, as task names
        are), the same bytes as the app's JSON provider writes for `to_api()`; not
        otherwise (DEL is written raw, not as ``\\u007f``; 1e-7 as ``1e-7``, not
        ``1e-07``). The submit lane (api/lane.py) answers with it."""
        return type(self).__pydantic_serializer__.to_json(self, ensure_ascii=True) + b"\n"


def _from_hash(decode: Callable[[str], Any]) -> BeforeValidator:
    # A job hash holds text: these fields are decoded from it (only when the model is
    # validated from a hash, see `Job.from_hash`).
    def run(value: Any, info: ValidationInfo) -> Any:
        return decode(value) if info.context is _HASH and isinstance(value, str) else value

    return BeforeValidator(run)


_HASH = object()
#: A time as the API shows it: ISO-8601 UTC text.
IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
#: A time of a job hash: ms since the epoch there (see jobsys.stamps).
Stamp = Annotated[IsoTime, _from_hash(stamp)]
#: A JSON value: JSON text in the hash.
JsonValue = Annotated[Any, _from_hash(json.loads)]


class Attempt(TypedDict, total=False):
    """One failed attempt in a job's ``history`` (written by the Lua scripts)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    attempt: Required[int]
    worker: str
    started_at: IsoTime
    ended_at: Required[IsoTime]
    error: Required[str]


class ShownWhenSet(ApiModel):
    """An `ApiModel` whose fields in `null_when_set` are shown as null when they were
    set (a JSON null stored as a value) and left out when they were not."""

    @model_serializer(mode="wrap")
    def _unset_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.null_when_set:
            if name in data and data[name] is None and name not in self.__pydantic_fields_set__:
                del data[name]
        return data


class Job(ShownWhenSet):
    """One job as stored in its hash ``job:<id>``, and as `GET /jobs/<id>` shows it:
    the fields in this order, those that are None left out; but `payload` and
    `result`, JSON values, are shown when they were stored, even as null."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # the hash holds more fields
    null_when_set = frozenset({"payload", "result"})

    id: str = Field(json_schema_extra={"format": "uuid"})
    status: JobStatus
    task: str
    queue: str = DEFAULT_QUEUE
    priority: int = Field(0, json_schema_extra={"minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY})
    payload: JsonValue = Field(
        None, description="The payload as submitted (absent when none was given)."
    )
    created_at: Stamp
    run_at: Stamp | None = Field(
        None, description="When a job submitted with a delay or run_at became (or becomes) due."
    )
    schedule: str | None = Field(None, description="The periodic schedule that made it.")
    tick: Stamp | None = Field(None, description="The tick of that schedule it was made for.")
    timeout_seconds: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0})
    attempts: int = Field(0, json_schema_extra={"minimum": 0})
    max_retries: int = Field(0, json_schema_extra={"minimum": 0})
    started_at: Stamp | None = None
    worker: str | None = None
    progress: float | None = Field(
        None,
        description="How far the running handler says it has got.",
        json_schema_extra={"minimum": 0, "maximum": 1},
    )
    progress_message: str | None = None
    next_attempt_at: Stamp | None = None
    result: JsonValue = Field(None, description="The task's return value (once completed).")
    completed_at: Stamp | None = None
    error: str | None = Field(None, description="The last attempt's error.")
    failed_at: Stamp | None = None
    cancel_requested: bool | None = Field(
        None, description="Present (true) while a running job's cancellation is pending."
    )
    cancelled_at: Stamp | None = None
    history: Annotated[list[Attempt], _from_hash(json.loads)] | None = Field(
        None, description="The failed attempts, oldest first (at most the last 20)."
    )
    replayed: int | None = Field(
        None,
        description="Times the job was retried from the dead letter.",
        json_schema_extra={"minimum": 1},
    )
    replayed_at: Stamp | None = Field(None, description="When it was last retried from there.")
    expires_at: Stamp | None = Field(
        None, description="If it has not started by then, it never runs and ends `expired`."
    )
    expired_at: Stamp | None = Field(None, description="When it ended `expired`.")
    unique_key: str | None = Field(None, description="The unique_key it was submitted with.")
    concurrency_key: str | None = Field(
        None, description="The concurrency_key it was submitted with."
    )
    traceparent: str | None = Field(
        None,
        description="The W3C trace context of the submit (its valid `traceparent` header, "
        "else a new trace the API started).",
        json_schema_extra={"pattern": TRACEPARENT_PATTERN},
    )
    # workflows (docs/workflows.md)
    depends_on: Annotated[list[str], _from_hash(lambda t: t.split(","))] | None = Field(
        None,
        description="The jobs it waits for (its submit's depends_on).",
    )
    waiting_on: int | None = Field(
        None, description="How many of them have not ended yet (while `waiting`)."
    )
    on_parent_failure: Literal["run"] | None = Field(
        None, description="`run` when it runs even if a parent does not complete."
    )
    batch: str | None = Field(None, description="The batch it belongs to.")
    batch_callback: str | None = Field(None, description="The batch whose callback it is.")

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[str, str]) -> Job:
        """Build a Job from the decoded fields of its Redis hash ``job:<job_id>``."""
        return cls.model_validate({**fields, "id": job_id}, context=_HASH)
