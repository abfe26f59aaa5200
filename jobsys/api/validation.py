"""The request models: every rule a request body, query or job id must keep, written
once (the OpenAPI document is generated from these models).

Each rule failure raises `InvalidJob(field, rule)` (400), werkzeug's
`UnsupportedMediaType` (415) or `RequestEntityTooLarge` (413), so a rejected
request never reaches the store.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from flask import Request
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticSerializationError, to_json
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.http import parse_options_header

from jobsys.errors import InvalidJob, JobNotFound
from jobsys.models import (
    DEFAULT_QUEUE,
    MAX_PRIORITY,
    MIN_PRIORITY,
    QUEUE_NAME_PATTERN,
    JobStatus,
    never_null,
)
from jobsys.schedules import CRON_PATTERN, Schedule, check_cron
from jobsys.store import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, MAX_PARENTS, Submission
from jobsys.webhooks.safety import check_url

#: Content-Type headers whose parse `media_type` remembers.
MEDIA_TYPES_CACHED = 64
#: Largest accepted request body (Flask's MAX_CONTENT_LENGTH); larger is 413.
MAX_BODY_BYTES = 1024 * 1024
#: Largest accepted body of ``POST /submit/batch``.
MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024
#: Most jobs one ``POST /submit/batch`` may carry.
MAX_BATCH_JOBS = 10_000
#: Longest delay_seconds of a job: one year.
MAX_DELAY_S = 366 * 24 * 3600
#: Longest timeout_seconds of a job: one day.
MAX_TIMEOUT_S = 86400
#: Highest max_retries a job may ask for.
MAX_RETRIES_LIMIT = 100
#: Longest task name, in characters.
MAX_TASK_CHARS = 200
#: Most ids one dead-letter retry or purge may name.
MAX_IDS = 10_000
#: Largest payload of one job or schedule, as compact UTF-8 JSON: the body limit of
#: POST /submit, whichever way the payload arrives (else a batch job's payload was
#: bounded only by the 16 MiB batch body, and every read of that job paid for it).
MAX_PAYLOAD_BYTES = MAX_BODY_BYTES
#: Most JSON values (array elements and object members, plus the body itself) in
#: one body, counted on its bytes before it is parsed: parsing builds a Python object
#: of up to ~100 bytes per value. One per byte of MAX_BODY_BYTES, so that every body
#: POST /submit takes (the densest JSON spends 2 bytes a value) stays within it, and
#: a batch may hold as many values as one submit; a 16 MiB batch of ``{}`` holds 5.6
#: million.
MAX_JSON_VALUES = MAX_BODY_BYTES
#: Deepest nesting of arrays/objects in a body (the body object is level 1).
#: A fixed limit instead of whatever depth happens to exhaust the interpreter's
#: recursion limit, so a job that was accepted can always be serialised again.
MAX_JSON_DEPTH = 128

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)

#: A job id: a UUID, in any case (answered in lower case).
JOB_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_MAX_ECHO_CHARS = 100


def _drop_default(schema: dict[str, Any]) -> None:
    # Leaving `payload` out is not the same as sending null: show no default.
    schema.pop("default", None)


def _text_only(value: Any) -> Any:
    # A date-time arrives as RFC 3339 text; lax parsing would also take a number.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z")
    return value


def _small_payload(payload: Any) -> Any:
    if isinstance(payload, dict | list | str):
        size = _json_bytes(payload)
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"must be at most {MAX_PAYLOAD_BYTES} bytes as compact UTF-8 JSON "
                f"(is {size}); store larger data elsewhere and pass a reference"
            )
    return payload


def _not_too_late(run_at: datetime | None) -> datetime | None:
    # The bound of delay_seconds, for a due time given as a date.
    if run_at is not None and run_at > datetime.now(UTC) + timedelta(seconds=MAX_DELAY_S):
        raise ValueError(f"must be at most {MAX_DELAY_S} seconds (a year) ahead")
    return run_at


def _years_so_far(schema: dict[str, Any]) -> None:
    # The bound of run_at as a pattern, for fuzzers: a date-time of this year or
    # earlier is within MAX_DELAY_S (narrower than the rule, which a pattern cannot
    # follow day by day).
    year = f"{datetime.now(UTC).year:04d}"
    earlier = [
        f"{year[:i]}[0-{int(year[i]) - 1}]" + r"\d" * (3 - i) for i in range(4) if year[i] != "0"
    ]
    schema["pattern"] = f"^(?:{'|'.join([*earlier, year])})-"


def _printable(task: str) -> str:
    if not task.isprintable():
        raise ValueError("must contain only printable characters")
    return task


#: A task name: 1 to 200 printable characters.
TaskName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TASK_CHARS,
        description=(
            "The name of the task to run: 1 to 200 printable characters (Python's "
            "str.isprintable: no control, format, private-use or unassigned characters, "
            "and no separators but the space)."
        ),
        # Fuzzers draw tasks from the document's pattern: the rule as a regex.
        json_schema_extra=lambda schema: schema.update(pattern=printable_pattern()),
    ),
    AfterValidator(_printable),
]
#: A unique key of a job (flow control, docs/flow-control.md): as a task name.
UniqueKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TASK_CHARS,
        json_schema_extra=lambda schema: schema.update(pattern=printable_pattern()),
    ),
    AfterValidator(_printable),
]
#: A job's payload: any JSON value of at most MAX_PAYLOAD_BYTES.
Payload = Annotated[
    Any,
    Field(
        description=(
            "Any JSON value handed to the task, at most 1 MiB (1048576 bytes) as compact "
            "UTF-8 JSON. Optional; an explicit null is stored as null."
        ),
        json_schema_extra=_drop_default,
    ),
    AfterValidator(_small_payload),
]
#: When a job is due: an RFC 3339 date-time, at most MAX_DELAY_S ahead.
DueTime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(_not_too_late),
    Field(json_schema_extra=_years_so_far),
]
#: A queue name.
QueueName = Annotated[
    str,
    Field(
        pattern=QUEUE_NAME_PATTERN,
        description="The queue to put the job in: 1 to 64 of A-Z a-z 0-9 _ . : -.",
    ),
]


class BatchJob(BaseModel):
    """One job of POST /submit/batch: the fields of POST /submit but `queue`, which
    the batch gives once."""

    model_config = ConfigDict(extra="forbid", strict=True, title="BatchJob")

    task: TaskName
    payload: Payload = None
    priority: int = Field(
        default=0,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=(
            f"{MIN_PRIORITY} to {MAX_PRIORITY}; a higher priority runs before every waiting "
            "job of a lower one. Jobs of equal priority run in submission order."
        ),
    )
    delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description="Run no earlier than this many seconds from now (at most one year).",
        json_schema_extra=_drop_default,
    )
    run_at: DueTime | None = Field(
        default=None,
        strict=False,  # parse the RFC 3339 text of JSON into a datetime
        description=(
            "Run no earlier than this time: an RFC 3339 date-time with a UTC offset or Z, "
            "e.g. 2026-12-01T08:00:00Z, at most a year ahead (as delay_seconds). A time "
            "in the past runs at once. With delay_seconds too, the later of the two counts."
        ),
        json_schema_extra=_drop_default,
    )
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RETRIES_LIMIT,
        description="Retries after the first attempt (default: the server's MAX_RETRIES).",
        json_schema_extra=_drop_default,
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description=(
            "Longest one attempt may run (at most a day). The handler then runs in a child "
            "process, which is stopped when it overruns: a failed attempt, retried like any."
        ),
        json_schema_extra=_drop_default,
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "When the job ends (completed, failed or cancelled), POST it here as a signed "
            "webhook (docs/events.md): an http(s) URL whose host is a public address "
            "(loopback, private, link-local and metadata addresses are refused unless "
            "WEBHOOK_ALLOWED_HOSTS allows them). Needs the API's JOBSYS_WEBHOOK_SECRET."
        ),
        json_schema_extra=_drop_default,
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_form(cls, url: str | None) -> str | None:
        if url is not None:
            check_url(url)  # the form only; the addresses are checked with the settings
        return url

    # -- flow control (docs/flow-control.md) --
    expires_at: DueTime | None = Field(
        default=None,
        strict=False,  # parse the RFC 3339 text of JSON into a datetime
        description=(
            "If the job has not started by this time (an RFC 3339 date-time, at most a year "
            "ahead) it never runs and ends `expired`. Retries of a job that started are "
            "not affected."
        ),
        json_schema_extra=_drop_default,
    )
    ttl_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description=(
            "As expires_at, counted from the submit (Redis clock): at most a year. With "
            "expires_at too, the earlier of the two counts."
        ),
        json_schema_extra=_drop_default,
    )
    concurrency_key: UniqueKey | None = Field(
        default=None,
        description=(
            "E.g. a tenant id: the queue's (or task's) concurrency limit caps how many jobs "
            "with the same key run at once, and waiting keys are served round-robin. 1 to "
            "200 printable characters."
        ),
        json_schema_extra=_drop_default,
    )

    # workflows (docs/workflows.md)
    depends_on: list[Annotated[str, Field(pattern=JOB_ID_PATTERN)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PARENTS,
        description=(
            f"1 to {MAX_PARENTS} ids of existing jobs: this job waits (`waiting`) until "
            "every one has completed. When one fails for good or is cancelled, it ends "
            "`cancelled` (see on_parent_failure). An id of no job is a 400."
        ),
        json_schema_extra=_drop_default,
    )
    on_parent_failure: Literal["cancel", "run"] = Field(
        default="cancel",
        description=(
            "With depends_on: `cancel` (the default) ends the job `cancelled` when a parent "
            "fails for good or is cancelled; `run` runs it once every parent has ended, "
            "whatever their outcome."
        ),
    )

    @field_validator("priority", "max_retries", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return _integral(value)

    def submission(self, traceparent: str | None = None) -> Submission:
        """What the store needs to queue this job (in trace `traceparent`)."""
        return Submission(
            self.task,
            self.payload,
            self.has_payload,
            max_retries=self.max_retries,
            priority=self.priority,
            delay_s=self.delay_seconds or 0.0,
            run_at=self.run_at,
            timeout_s=self.timeout_seconds,
            traceparent=traceparent,
            expires_at=self.expires_at,
            ttl_s=self.ttl_seconds,
            depends_on=tuple(dict.fromkeys(p.lower() for p in self.depends_on))
            if self.depends_on
            else (),
            on_parent_failure=self.on_parent_failure,
            callback_url=self.callback_url,
            concurrency_key=self.concurrency_key,
        )

    @property
    def has_payload(self) -> bool:
        """True when the body had a ``payload`` field (even a null one)."""
        return "payload" in self.model_fields_set


class SubmitRequest(BatchJob):
    """The JSON body of POST /submit."""

    model_config = ConfigDict(extra="forbid", strict=True, title="SubmitRequest")

    queue: QueueName = DEFAULT_QUEUE
    # -- flow control (docs/flow-control.md): not in a batch's jobs --
    unique_key: UniqueKey | None = Field(
        default=None,
        description=(
            "While a job of the queue with this key waits or runs (or within "
            "unique_for_seconds of the first submit), a submit with it queues nothing and "
            'answers 200 with that job\'s id and "duplicate": true. 1 to 200 printable '
            "characters."
        ),
        json_schema_extra=_drop_default,
    )
    unique_for_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description="With unique_key: the key also holds this long from the first submit, "
        "even once its job has ended (at most a year). Ignored without a unique_key.",
        json_schema_extra=_drop_default,
    )

    def submission(self, traceparent: str | None = None) -> Submission:
        """What the store needs to queue this job (in trace `traceparent`)."""
        sub = super().submission(traceparent)
        if self.unique_key is None:
            return sub
        return replace(sub, unique_key=self.unique_key, unique_for_s=self.unique_for_seconds)


class BatchRequest(BaseModel):
    """The JSON body of POST /submit/batch."""

    model_config = ConfigDict(extra="forbid", strict=True, title="BatchRequest")

    queue: QueueName = Field(
        default=DEFAULT_QUEUE,
        description="The queue every job of the batch goes to (one queue per batch, so "
        "that the atomic step touches one queue's keys).",
    )
    jobs: list[BatchJob] = Field(
        min_length=1,
        max_length=MAX_BATCH_JOBS,
        description=(
            f"1 to {MAX_BATCH_JOBS} jobs, each as in POST /submit but without `queue`. All "
            "are queued in one atomic step, or none is."
        ),
    )


class ScheduleRequest(BaseModel):
    """The JSON body of POST /schedules."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ScheduleRequest")

    name: str = Field(
        pattern=QUEUE_NAME_PATTERN,
        description="The schedule's name, 1 to 64 of A-Z a-z 0-9 _ . : -. "
        "Posting an existing name replaces that schedule.",
    )
    cron: str = Field(
        pattern=CRON_PATTERN,
        description=(
            "Cron expression, in UTC: five numeric fields (minute 0-59, hour 0-23, day "
            "1-31, month 1-12, weekday 0-7), each a list of *, numbers or ranges with an "
            "optional /step, separated by single spaces; a sixth field, seconds, may follow."
        ),
    )
    task: TaskName
    payload: Payload = None
    queue: QueueName = DEFAULT_QUEUE

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        return check_cron(cron)

    def schedule(self) -> Schedule:
        """The schedule this request describes."""
        return Schedule(self.name, self.cron, self.task, self.payload, self.queue)


class JobPatch(BaseModel):
    """The JSON body of PATCH /jobs/<id> (flow control, docs/flow-control.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="JobPatch")

    priority: int = Field(
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=(
            f"The job's new priority, {MIN_PRIORITY} to {MAX_PRIORITY}. Among the jobs of "
            "that priority it keeps its submission order."
        ),
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return _integral(value)


class RateRequest(BaseModel):
    """A rate limit of PUT /queues/<name>/limits."""

    model_config = ConfigDict(extra="forbid", strict=True, title="RateRequest")

    @field_validator("limit", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return _integral(value)

    limit: int = Field(ge=1, le=1_000_000, description="At most this many job starts ...")
    period_seconds: float = Field(
        ge=0.001,
        le=86400,
        allow_inf_nan=False,
        description="... per this many seconds (1 ms to a day).",
    )


class LimitsRequest(BaseModel):
    """The JSON body of PUT /queues/<name>/limits (flow control, docs/flow-control.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="LimitsRequest")

    task: TaskName | None = Field(
        default=None,
        description="Set the limits of this task of the queue; absent: the queue's own.",
        json_schema_extra=_drop_default,
    )
    rate: RateRequest | None = Field(
        default=None,
        description="At most `limit` starts per `period_seconds`; null or absent: none.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="At most this many running jobs per concurrency_key; null or absent: none.",
    )

    @field_validator("concurrency", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return _integral(value)


#: A task name to filter by (any characters: it only has to match).
TaskFilter = Annotated[str, Field(min_length=1, max_length=MAX_TASK_CHARS)]
#: A job id in a body: a UUID, in any case; lower-cased.
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN), AfterValidator(str.lower)]


def _limit(text: Any) -> Any:
    # A query parameter is text: a whole number, written plainly, in range.
    if not isinstance(text, str) or not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError(f"must be a whole number 1 to {MAX_LIMIT}")
    if not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"must be a whole number 1 to {MAX_LIMIT}")
    return int(text)


#: The job fields a list page leaves out unless `include` names them: each may be
#: up to a MiB, which would make a 500-job page up to 500 MiB (open a job for them).
LISTED_ON_REQUEST = ("payload", "result")
#: `include`: a comma-separated list of LISTED_ON_REQUEST.
INCLUDE_PATTERN = r"^(payload|result)(,(payload|result))*$"


class DeadLetterQuery(BaseModel):
    """The query of GET /dead-letter (other parameters are ignored)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=never_null)

    task: TaskFilter | None = Field(
        None, description="Only jobs of this task. Not indexed: see the description."
    )
    queue: QueueName | None = Field(
        None, description="Only jobs of this queue (default: every queue)."
    )
    limit: Annotated[int, BeforeValidator(_limit)] = Field(
        DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"Most jobs in the page (1 to {MAX_LIMIT}; default {DEFAULT_LIMIT}).",
    )
    # Its shape is checked where it is decoded (jobsys.store.listing).
    cursor: str | None = Field(
        None,
        description="The `next_cursor` of the previous page (opaque).",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    )
    include: str | None = Field(
        None,
        pattern=INCLUDE_PATTERN,
        description=(
            "`payload`, `result` or `payload,result`: also show these fields of each job. "
            "Without it a page leaves them out (GET /jobs/{job_id} shows them)."
        ),
    )

    @property
    def left_out(self) -> frozenset[str]:
        """The fields of each job the page leaves out."""
        return frozenset(LISTED_ON_REQUEST) - set((self.include or "").split(","))


class JobQuery(DeadLetterQuery):
    """The query of GET /jobs."""

    status: JobStatus | None = Field(
        None, description="Only jobs in this status (default: every status)."
    )


#: Longest long-poll of GET /jobs/<id>?wait= (seconds).
MAX_WAIT_S = 60


class JobGetQuery(BaseModel):
    """The query of GET /jobs/<id> (other parameters are ignored)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=never_null)

    wait: float | None = Field(
        None,
        ge=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="Long-poll: answer as soon as the job is final (completed, failed, "
        "cancelled, expired), or with its current state after this many seconds "
        f"(0 to {MAX_WAIT_S}; default 0: at once).",
    )


class _Selection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: What a body may hold, whichever kind of selection it is.
    fields: ClassVar[tuple[str, ...]] = ("ids", "all", "task", "queue")


class ByIds(_Selection):
    """Dead jobs by id (ids that are not dead jobs are skipped and counted)."""

    ids: list[JobId] = Field(min_length=1, max_length=MAX_IDS)


class All(_Selection):
    """Every dead job."""

    all: Literal[True]

    @field_validator("all", mode="before")
    @classmethod
    def _true(cls, value: Any) -> Any:
        # `is`: 1 == True, but only true selects every job.
        if value is not True:
            raise ValueError("must be true (leave it out to select by task or queue)")
        return value


def _one_or_both(schema: dict[str, Any]) -> None:
    never_null(schema)
    schema["minProperties"] = 1


class ByFilter(_Selection):
    """Every dead job of a task and/or a queue (at least one of them)."""

    model_config = ConfigDict(json_schema_extra=_one_or_both)

    task: TaskFilter | None = None
    queue: QueueName | None = None

    @field_validator("task", "queue", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Leave a filter out to match any; null is no task or queue name.
        if value is None:
            raise ValueError("must be a string")
        return value


def _selected(body: Any) -> str:
    """Which kind of selection `body` is; a mix of two is a 400 naming the field."""
    if not isinstance(body, dict):
        return "filter"  # which then names the error: not an object
    if not body:
        raise InvalidJob("body", 'must select jobs: "ids", "all": true, or "task"/"queue"')
    known = body.keys() <= set(_Selection.fields)  # else: "not a known field"
    if "ids" in body:
        if known and len(body) > 1:
            raise InvalidJob("ids", 'cannot be combined with "all", "task" or "queue"')
        return "ids"
    if "all" in body:
        if known and len(body) > 1 and body["all"] is True:
            raise InvalidJob("all", 'cannot be combined with "task" or "queue"')
        return "all"
    return "filter"


#: The body of POST /dead-letter/retry and /dead-letter/purge: which dead jobs.
Selection = Annotated[
    Annotated[ByIds, Tag("ids")] | Annotated[All, Tag("all")] | Annotated[ByFilter, Tag("filter")],
    Discriminator(_selected),
]
_SELECTIONS: dict[str, type[ByIds | All | ByFilter]] = {
    "ids": ByIds,
    "all": All,
    "filter": ByFilter,
}


def submit_request(request: Request) -> SubmitRequest:
    """Validate the request of ``POST /submit`` (size, media type, JSON, rules)."""
    return submit_body(request.content_type, read_body(request))


def submit_body(content_type: str | None, body: bytes) -> SubmitRequest:
    """Validate a ``POST /submit`` body of this Content-Type header (media type, JSON,
    rules): the one check of the Flask route and of the submit lane (api/lane.py)."""
    return validate_model(SubmitRequest, json_body(content_type, body))


def batch_request(request: Request) -> BatchRequest:
    """Validate the request of ``POST /submit/batch`` (size, media type, JSON, rules)."""
    request.max_content_length = MAX_BATCH_BODY_BYTES
    return batch_body(request.content_type, read_body(request))


def batch_body(content_type: str | None, body: bytes) -> BatchRequest:
    """Validate a ``POST /submit/batch`` body of this Content-Type header."""
    return validate_model(BatchRequest, json_body(content_type, body))


def model_body(request: Request, model: type[M]) -> M:
    """Validate a request's JSON body against `model` (415, 400)."""
    return validate_model(model, _json_body(request))


def schedule_request(request: Request) -> ScheduleRequest:
    """Validate the request of ``POST /schedules``."""
    return validate_model(ScheduleRequest, _json_body(request))


def selection(request: Request) -> ByIds | All | ByFilter:
    """Validate the body of ``POST /dead-letter/retry`` and ``/dead-letter/purge``."""
    body = _json_body(request)
    return validate_model(_SELECTIONS[_selected(body)], body)


def limits_request(request: Request) -> LimitsRequest:
    """Validate the body of ``PUT /queues/<name>/limits``."""
    return validate_model(LimitsRequest, _json_body(request))


def job_patch(request: Request) -> JobPatch:
    """Validate the body of ``PATCH /jobs/<id>``."""
    return validate_model(JobPatch, _json_body(request))


def list_query(request: Request, model: type[Q]) -> Q:
    """Validate the query of ``GET /jobs`` (`JobQuery`), ``/dead-letter`` or ``/jobs/<id>``."""
    return validate_model(model, request.args.to_dict())


def _json_body(request: Request) -> Any:
    return json_body(request.content_type, read_body(request))


def json_body(content_type: str | None, body: bytes) -> Any:
    """The JSON value of a body declared by this Content-Type header (415, 400)."""
    mimetype, params = media_type(content_type)
    check_media_type(mimetype, params.get("charset"))
    return parse_json(body)


@lru_cache(maxsize=MEDIA_TYPES_CACHED)
def media_type(content_type: str | None) -> tuple[str, Mapping[str, str]]:
    """A Content-Type header's media type (lower case) and parameters, as werkzeug's
    `Request.mimetype` and `mimetype_params` read it. Remembered for the last
    MEDIA_TYPES_CACHED headers (clients send a handful; the gate and the body's
    check both ask)."""
    mimetype, params = parse_options_header(content_type or "")
    return mimetype.lower(), MappingProxyType(params)


def is_json(mimetype: str) -> bool:
    """True for ``application/json`` and ``*/*+json`` media types."""
    return mimetype == "application/json" or _is_json_suffix(mimetype)


def read_body(request: Request) -> bytes:
    """The raw body; 413 when it is larger than the request's `max_content_length`."""
    limit = request.max_content_length or MAX_BODY_BYTES
    # werkzeug raises 413 itself when Content-Length is too large...
    data = request.get_data(cache=False)
    # ...but quietly stops at the limit when the body comes chunked (no
    # Content-Length): a byte beyond it means the body was too large.
    if len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


def check_media_type(mimetype: str, charset: str | None) -> None:
    """Raise 415 unless the body is declared as UTF-8 JSON."""
    if not is_json(mimetype):
        got = repr(_short(mimetype)) if mimetype else "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (or a */*+json type); got {got}"
        )
    if charset is not None and charset.lower() not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(f"charset must be utf-8; got {_short(charset)!r}")


def parse_json(data: bytes) -> Any:
    """Decode a UTF-8 JSON body; any failure is a 400 naming the rule."""
    if _json_values(data) > MAX_JSON_VALUES:
        raise InvalidJob(
            "body",
            f"must hold at most {MAX_JSON_VALUES} JSON values (array elements and "
            "object members); split the batch",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidJob("body", f"must be UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise InvalidJob("body", f"must not nest deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, out-of-range numbers, huge integers
        raise InvalidJob("body", f"must be valid JSON ({_short(str(e))})") from None
    if _too_deep(value, MAX_JSON_DEPTH):
        raise InvalidJob("body", f"must not nest deeper than {MAX_JSON_DEPTH} levels")
    return value


def validate_model(model: type[M], body: Any) -> M:
    """`body` (a decoded JSON body or query) as `model`; `InvalidJob` naming the
    first field that breaks a rule, and the rule."""
    if not isinstance(body, dict):
        raise InvalidJob("body", f"must be a JSON object, not {_json_type(body)}")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        raise InvalidJob(_field(first), _rule(first, model)) from None


def canonical_job_id(job_id: str) -> str:
    """The lower-case form of a UUID job id; anything else is an unknown job (404)."""
    if not _JOB_ID.fullmatch(job_id):
        raise JobNotFound(_short(job_id))
    return job_id.lower()


@cache
def printable_pattern() -> str:
    """`str.isprintable` as a regex, for the OpenAPI document (fuzzers draw tasks from it).

    One character class of every printable range of this Python's Unicode
    database, written as literal characters so that Python's `re` and Rust's
    `regex` (which jsonschema-rs uses) read it alike.
    """
    ranges: list[str] = []
    start: int | None = None
    for code in range(sys.maxunicode + 2):
        printable = code <= sys.maxunicode and chr(code).isprintable()
        if printable and start is None:
            start = code
        elif not printable and start is not None:
            first, last = _class_char(start), _class_char(code - 1)
            ranges.append(first if start == code - 1 else f"{first}-{last}")
            start = None
    return f"^[{''.join(ranges)}]*$"


def _class_char(code: int) -> str:
    char = chr(code)
    return f"\\{char}" if char in "\\]-[^&~|" else char


def _is_json_suffix(mimetype: str) -> bool:
    kind, _, subtype = mimetype.partition("/")
    return bool(kind) and subtype.endswith("+json") and len(subtype) > len("+json")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _integral(value: Any) -> Any:
    """JSON Schema's "integer" takes 52.0 too: a float with no fraction becomes an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_short(text)} is out of range")
    return value


#: The body decoder: no NaN/Infinity, no out-of-range floats (made once: `json.loads`
#: with options builds a decoder per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


#: A JSON string, escapes and all (unrolled: no backtracking per character).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _json_values(data: bytes) -> int:
    """At least the number of values in JSON text `data`, without parsing it.

    Every value but the outermost follows a ``[``, ``{`` or ``,`` (outside strings), so
    one more than their count bounds the values (exactly, but that an empty array or
    object counts one). Cheap: a count over the bytes, and only when that is high a
    second one with the strings cut out (commas in text are not values)."""

    def count(text: bytes) -> int:
        return 1 + text.count(b"[") + text.count(b"{") + text.count(b",")

    upper = count(data)
    return upper if upper <= MAX_JSON_VALUES else count(_STRING.sub(b"", data))


def _json_bytes(value: Any) -> int:
    """The size of `value` as compact UTF-8 JSON."""
    try:
        # pydantic-core's encoder: some 6 times as fast as json's on small payloads.
        return len(to_json(value))
    except PydanticSerializationError:  # a lone surrogate (from a \ud800 escape)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return len(text.encode("utf-8", "surrogatepass"))


def _too_deep(value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _field(error: ErrorDetails) -> str:
    return ".".join(_short(str(part)) for part in error["loc"]) or "body"


_QUEUE_RULE = "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
_PATTERN_RULES = {
    QUEUE_NAME_PATTERN: _QUEUE_RULE,
    JOB_ID_PATTERN: "must be a job id (a UUID)",
    INCLUDE_PATTERN: "must be payload, result or payload,result",
    # What a cron that breaks the pattern has always been told (the text is a wart).
    CRON_PATTERN: _QUEUE_RULE,
}
_RULES = {
    "missing": "is required",
    "string_too_short": "must not be empty",
    "string_unicode": "must be valid Unicode (no lone surrogates)",
    "finite_number": "must be a finite number",
    "timezone_aware": "must carry a UTC offset or Z (e.g. 2026-12-01T08:00:00Z)",
    "datetime_parsing": "must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z",
    "datetime_from_date_parsing": "must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z",
    "datetime_type": "must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z",
}


def _rule(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    got = _json_type(error.get("input"))
    # A job inside a batch is a BatchJob: its field list is the one that applies.
    owner = BatchJob if len(error["loc"]) > 1 else model
    described: dict[str, Callable[[], str]] = {
        "extra_forbidden": lambda: f"is not a known field (allowed: {', '.join(_allowed(owner))})",
        # Raised by a field_validator: its message is the rule.
        "value_error": lambda: str(ctx.get("error", error["msg"])),
        "string_pattern_mismatch": lambda: _PATTERN_RULES.get(
            str(ctx.get("pattern")), error["msg"]
        ),
        "string_too_long": lambda: f"must be at most {ctx.get('max_length')} characters",
        "too_short": lambda: f"must hold at least {ctx.get('min_length')} job",
        "too_long": lambda: f"must hold at most {ctx.get('max_length')} jobs",
        # JobStatus is the only enum a request takes (GET /jobs?status=).
        "enum": lambda: "must be one of " + ", ".join(s.value for s in JobStatus),
        "greater_than_equal": lambda: f"must be at least {ctx.get('ge')}",
        "greater_than": lambda: f"must be more than {ctx.get('gt')}",
        "less_than_equal": lambda: f"must be at most {ctx.get('le')}",
        "string_type": lambda: f"must be a string, not {got}",
        "int_type": lambda: f"must be a whole number, not {got}",
        "int_from_float": lambda: f"must be a whole number, not {got}",
        "float_type": lambda: f"must be a number, not {got}",
        "list_type": lambda: f"must be an array, not {got}",
        "model_type": lambda: f"must be a JSON object, not {got}",
        "dict_type": lambda: f"must be a JSON object, not {got}",
    }
    if kind in described:
        return described[kind]()
    return _RULES.get(kind, error["msg"])


def _allowed(model: type[BaseModel]) -> tuple[str, ...]:
    return model.fields if issubclass(model, _Selection) else tuple(model.model_fields)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ECHO_CHARS else text[: _MAX_ECHO_CHARS - 1] + "…"
