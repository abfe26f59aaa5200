"""Requests and answers of the batch and workflow routes (docs/workflows.md).

The jobs inside them are `GraphJob`s: the job form of POST /submit/batch
(`validation.BatchJob`, so every rule of a job is written once) without concurrency_key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobsys.api.schemas import Count, JobId
from jobsys.api.validation import MAX_BATCH_JOBS, BatchJob, QueueName
from jobsys.models import DEFAULT_QUEUE, ApiModel, IsoTime, JobStatus

#: Most steps of one workflow.
MAX_STEPS = 100
#: A step's name.
STEP_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

Status = Literal["queued", "scheduled", "waiting", "cancelled"]


class GraphJob(BatchJob):
    """A job of POST /batches or a step of POST /workflows: as in POST /submit/batch,
    without concurrency_key."""

    model_config = ConfigDict(extra="forbid", strict=True, title="GraphJob")

    concurrency_key: None = Field(
        default=None,
        description="Not supported in batches and workflows yet (POST /submit and "
        "POST /submit/batch take it).",
    )

    @field_validator("concurrency_key", mode="before")
    @classmethod
    def _no_concurrency_key(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("is not supported in batches and workflows yet")


class CallbackJob(GraphJob):
    """A batch's callback: a job as in a batch, without depends_on (it waits for its
    batch)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="CallbackJob")

    depends_on: None = Field(
        default=None, description="Not allowed: a callback waits for its batch."
    )


class BatchesRequest(BaseModel):
    """The JSON body of POST /batches."""

    model_config = ConfigDict(extra="forbid", strict=True, title="BatchesRequest")

    queue: QueueName = Field(
        default=DEFAULT_QUEUE, description="The queue of every job of the batch and its callbacks."
    )
    jobs: list[GraphJob] = Field(
        min_length=1,
        max_length=MAX_BATCH_JOBS,
        description=f"1 to {MAX_BATCH_JOBS} jobs, as in POST /submit/batch.",
    )
    callback_queue: QueueName | None = Field(
        default=None,
        description="The queue of the callbacks (default: `queue`), e.g. to have other "
        "workers run them.",
    )
    on_complete: CallbackJob | None = Field(
        default=None,
        description="A job queued once every job of the batch has ended, whatever the "
        'outcome. It runs with the payload {"batch": {"id", "total", "completed", "failed", '
        '"cancelled"}, "payload": <its own payload, null when none>}.',
    )
    on_success: CallbackJob | None = Field(
        default=None,
        description="A job queued once every job of the batch has completed (with the payload "
        "of on_complete). When one failed for good or was cancelled, or the batch was "
        "cancelled, it ends `cancelled` instead and never runs.",
    )


class BatchCreated(ApiModel):
    """The answer to POST /batches."""

    id: JobId = Field(description="The batch's id: `GET /batches/<id>`.")
    count: int = Field(ge=1)
    ids: list[JobId] = Field(description="One id per job, in the order of `jobs`.")
    statuses: list[Status] = Field(description="Each job's status, in order.")
    on_complete: JobId | None = None
    on_success: JobId | None = None


class BatchView(ApiModel):
    """A batch as `GET /batches/<id>` shows it."""

    id: JobId
    queue: str
    status: Literal["running", "finished"] = Field(
        description="`finished` once every job has ended."
    )
    total: Count
    pending: Count = Field(description="Jobs that have not ended.")
    completed: Count
    failed: Count = Field(description="Jobs that failed for good.")
    cancelled: Count
    created_at: IsoTime
    finished_at: IsoTime | None = None
    cancelled_at: IsoTime | None = Field(None, description="When the batch was cancelled.")
    on_complete: JobId | None = Field(None, description="The on_complete callback's job id.")
    on_success: JobId | None = Field(None, description="The on_success callback's job id.")


class WorkflowStep(GraphJob):
    """One step of POST /workflows: a job (as in a batch) with a name and the steps it
    runs after."""

    model_config = ConfigDict(extra="forbid", strict=True, title="WorkflowStep")

    name: str = Field(pattern=STEP_NAME_PATTERN, description="Unique in the workflow.")
    after: list[str] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Names of steps of this workflow that must complete first.",
    )


class WorkflowRequest(BaseModel):
    """The JSON body of POST /workflows."""

    model_config = ConfigDict(extra="forbid", strict=True, title="WorkflowRequest")

    queue: QueueName = Field(default=DEFAULT_QUEUE, description="The queue of every step.")
    steps: list[WorkflowStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description=f"1 to {MAX_STEPS} steps. `after` must name steps of the request and "
        "form no cycle; a step may also name existing jobs in depends_on.",
    )


class StepView(ApiModel):
    """One step of a workflow."""

    name: str
    id: JobId
    task: str
    after: list[str]
    status: JobStatus | None = Field(None, description="Absent once the job has expired.")


class WorkflowCreated(ApiModel):
    """The answer to POST /workflows: every step's job id and status."""

    id: JobId = Field(description="The workflow's id: `GET /workflows/<id>`.")
    queue: str
    steps: list[StepView] = Field(description="The steps, in the order given.")


class WorkflowView(ApiModel):
    """A workflow: its steps, in the order given, with their status."""

    id: JobId
    queue: str
    created_at: IsoTime
    status: Literal["running", "completed", "failed"] = Field(
        description="`completed` when every step completed, `failed` when every step ended "
        "and one did not complete, else `running` (a step whose job expired counts as ended)."
    )
    steps: list[StepView]


#: The models the OpenAPI document names (see api/openapi.py).
MODELS = (BatchesRequest, BatchCreated, BatchView, WorkflowRequest, WorkflowCreated, WorkflowView)
