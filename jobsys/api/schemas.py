"""The response models: the shape of every JSON answer of the API, written once.

The handlers build their answers with these models and the OpenAPI document is
generated from them. A job is `jobsys.models.Job`; the request models are in
`jobsys.api.validation`. A field that is None is left out of an answer, unless the
model says that null is a value (see `jobsys.models.ApiModel`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from jobsys.models import ApiModel, IsoTime, Job, JobStatus, ShownWhenSet
from jobsys.store import CURSOR_PATTERN

JobId = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
Count = Annotated[int, Field(ge=0)]
#: The `replayed` of a submit's answer: present (true) only on a repeat.
Replayed = Annotated[
    Literal[True] | None,
    Field(
        description="Present when an Idempotency-Key repeated an earlier request: nothing "
        "new was queued and these are the earlier request's ids.",
    ),
]


class Submitted(ApiModel):
    """The answer to POST /submit."""

    status: JobStatus = Field(
        description="`scheduled` when the job has a delay or a run_at ahead, else `queued`; "
        "with depends_on, `waiting` while a parent has not ended, `cancelled` when one has "
        "already failed or been cancelled (docs/workflows.md); for a duplicate (a "
        "unique_key held by another job), that job's status now."
    )
    task: str
    id: JobId
    replayed: Replayed = None
    duplicate: bool | None = Field(
        default=None,
        description="Present (true) when a job with the same unique_key held it: nothing was "
        "queued, `id` is that job's (docs/flow-control.md).",
    )


class BatchSubmitted(ApiModel):
    """The answer to POST /submit/batch."""

    status: Literal["queued"]
    count: int = Field(ge=1)
    ids: list[JobId] = Field(description="One id per job, in the order of `jobs`.")
    replayed: Replayed = None
    statuses: list[Literal["queued", "scheduled", "waiting", "cancelled"]] | None = Field(
        None,
        description="Each job's status, in order: only when a depends_on left one "
        "`waiting` or `cancelled` (docs/workflows.md).",
    )


class Minute(ApiModel):
    """One minute of a queue's throughput."""

    minute: IsoTime
    completed: Count
    failed: Count


class RateLimit(ApiModel):
    """A rate limit: at most `limit` job starts per `period_seconds` (docs/flow-control.md)."""

    limit: int = Field(ge=1)
    period_seconds: float = Field(gt=0)


class TaskLimits(ApiModel):
    """The limits of a queue, or of one task in it (docs/flow-control.md)."""

    # Null is a value here: no such limit.
    rate: RateLimit | None = Field(description="At most this many starts per period; null: none.")
    concurrency: int | None = Field(
        ge=1, description="At most this many running jobs per concurrency_key; null: none."
    )
    hold_until: IsoTime | None = Field(
        default=None,
        description="Present while a handler's RateLimited holds these jobs off: none starts "
        "before this time.",
    )


class FlowLimits(TaskLimits):
    """A queue's limits, and those of its tasks (docs/flow-control.md)."""

    tasks: dict[str, TaskLimits] = Field(description="Limits of single tasks, by task name.")


class QueueView(ApiModel):
    """One queue with its counts (GET /queues)."""

    name: str
    depth: Count = Field(description="Jobs ready to run now.")
    in_flight: Count = Field(description="Jobs being run (leased to a worker).")
    scheduled: Count = Field(
        description="Jobs waiting for a due time: delayed jobs and retries in backoff."
    )
    dead: Count = Field(description="Dead jobs (failed for good) of the queue.")
    # Null is a value here: no queued job.
    oldest_age_seconds: float | None = Field(
        ge=0,
        description="Seconds since the oldest queued job (ready, or a retry waiting out its "
        "backoff) was queued; null when none is.",
    )
    throughput: list[Minute] = Field(
        description="The last 15 minutes (this one included), oldest first: jobs completed "
        "and attempts failed (retried or dead-lettered) in each minute (Redis clock)."
    )
    paused: bool = Field(
        description="Paused (POST /queues/<name>/pause): submits are accepted, no worker "
        "starts its jobs, running ones finish."
    )
    limits: FlowLimits = Field(description="Its rate and concurrency limits.")


class Queues(ApiModel):
    """The answer to GET /queues: the queues, by name."""

    queues: list[QueueView]


class WorkerView(ApiModel):
    """One live worker (GET /workers)."""

    id: str = Field(description="host:pid:random.")
    host: str
    pid: int
    queues: list[str]
    concurrency: int = Field(ge=1)
    current_jobs: list[JobId] = Field(description="Ids of the jobs it holds leases on now.")
    started_at: IsoTime
    last_heartbeat: IsoTime
    processed: Count = Field(description="Attempts it finished (completed or failed).")
    failed: Count = Field(description="Attempts of it that failed.")
    supervisor: str | None = Field(
        default=None,
        description="`<host>:<pid>` of the supervisor it runs under (`jobsys worker "
        "--processes`); absent for a worker process of its own.",
    )


class Workers(ApiModel):
    """The answer to GET /workers."""

    workers: list[WorkerView] = Field(
        description="Live workers (last heartbeat within WORKER_LIVENESS_SECONDS), by id."
    )


class TaskView(ApiModel):
    """One task that live workers serve (GET /tasks)."""

    name: str
    kind: Literal["sync", "async"] = Field(
        description="`async`: an `async def` handler, run on its worker's event loop."
    )
    queue: str | None = Field(
        default=None, description="Default queue of a POST /submit that names none."
    )
    max_retries: int | None = Field(default=None, ge=0, description="Default max_retries.")
    timeout_seconds: float | None = Field(default=None, gt=0, description="Default timeout.")
    priority: int | None = Field(default=None, description="Default priority.")
    payload_schema: dict[str, Any] | None = Field(
        default=None,
        description="The JSON Schema of the payload, when the handler's payload parameter is "
        "annotated with a pydantic model; a submit's payload is checked against it.",
    )
    workers: int = Field(ge=1, description="Live workers that serve it.")


class Tasks(ApiModel):
    """The answer to GET /tasks."""

    tasks: list[TaskView] = Field(
        description="Every task a live worker serves, by name (a default is shown only when "
        "the task sets it)."
    )


class Schedule(ShownWhenSet):
    """One periodic schedule (GET /schedules, POST /schedules)."""

    null_when_set = frozenset({"payload"})

    name: str
    cron: str
    task: str
    payload: Any = None
    queue: str
    source: Literal["code", "api"] = Field(
        description="`code`: declared beside the handlers; `api`: POST /schedules."
    )
    next_run_at: IsoTime | None = Field(description="Null when the cron matches no date.")


class Schedules(ApiModel):
    """The answer to GET /schedules: the schedules, by name."""

    schedules: list[Schedule]


Cursor = Annotated[
    str | None,
    Field(
        pattern=CURSOR_PATTERN,
        description="Pass it as `cursor` for the next page; null on the last page.",
    ),
]


class JobPage(ApiModel):
    """A page of GET /jobs."""

    jobs: list[Job]
    next_cursor: Cursor


class DeadLetterPage(ApiModel):
    """A page of GET /dead-letter."""

    jobs: list[Job]
    next_cursor: Cursor
    total: Count = Field(
        description="Dead jobs of the queue (or of every queue), whatever the task."
    )


class Retried(ApiModel):
    """The answer to POST /dead-letter/retry."""

    retried: Count
    ids: list[JobId] = Field(description="The first 1000 ids retried.")
    skipped: Count = Field(description="Ids given that were not dead jobs.")


class Purged(ApiModel):
    """The answer to POST /dead-letter/purge."""

    purged: Count
    skipped: Count


class Health(ApiModel):
    """The answer to GET /health; when Redis is unavailable, also the fields of `Error`."""

    status: Literal["ok", "unavailable"]
    redis: str = Field(description='"ok", or why Redis did not answer.')
    error: str | None = None
    detail: str | None = None


class WhoAmI(ApiModel):
    """The answer to GET /auth/whoami."""

    role: Literal["admin", "producer", "open"]


class Error(ApiModel):
    """Every error answer."""

    error: str = Field(description="A short, stable message (e.g. `invalid request`, `not found`).")
    detail: str = Field(description="What exactly was wrong, for humans.")
    field: str | None = Field(
        None, description="The request field at fault (`body` for the body as a whole)."
    )


class QueueState(ApiModel):
    """The answer to POST /queues/<name>/pause and /resume (docs/flow-control.md)."""

    name: str
    paused: bool = Field(description="Whether the queue is paused now.")


class QueueLimits(FlowLimits):
    """The answer to GET and PUT /queues/<name>/limits (docs/flow-control.md)."""

    name: str
    paused: bool


#: Every answer that is a component of the OpenAPI document, under its class name.
ANSWERS = (
    QueueState,  # flow control
    QueueLimits,
    Submitted,
    BatchSubmitted,
    Schedule,
    Schedules,
    Queues,
    Workers,
    Tasks,
    JobPage,
    DeadLetterPage,
    Retried,
    Purged,
    Health,
    WhoAmI,
    Error,
)
