"""The batch and workflow endpoints (docs/workflows.md): validate, call the Store,
serialise, as the other routes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Literal

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from jobsys.api import headers, validation
from jobsys.api import operations as doc
from jobsys.api.headers import param
from jobsys.api.routes import _traceparent, state
from jobsys.api.workflow_models import (
    BatchCreated,
    BatchesRequest,
    BatchView,
    StepView,
    WorkflowCreated,
    WorkflowRequest,
    WorkflowView,
)
from jobsys.errors import InvalidJob, JobNotFound
from jobsys.models import FINAL_STATUSES
from jobsys.store import BatchInfo, BatchNotFound, Step, WorkflowNotFound

bp = Blueprint("jobsys_workflows", __name__)
_BATCH_ID = param("path", "batch_id", None, type="string", format="uuid")
_WORKFLOW_ID = param("path", "workflow_id", None, type="string", format="uuid")


def _body(model: type[validation.M], max_bytes: int) -> validation.M:
    if headers.IDEMPOTENCY_HEADER in request.headers:  # not silently ignored
        raise InvalidJob(headers.IDEMPOTENCY_HEADER, "is not supported on this route yet")
    request.max_content_length = max_bytes
    body = validation.json_body(request.content_type, validation.read_body(request))
    return validation.validate_model(model, body)


def _batch_view(info: BatchInfo) -> BatchView:
    fields = asdict(info)
    fields["status"] = "finished" if fields["finished_at"] else "running"
    return BatchView.model_validate(fields)


@bp.post("/batches")
@doc.operation(
    "createBatch",
    {"202": ("The batch and its jobs exist. `Location` is the batch's URL.", "BatchCreated")},
    {**doc.SUBMIT, "413": "BatchTooLarge"},
    "BatchesRequest",
    extra={"headers": {"Location": {"schema": {"type": "string"}}}},
)
def create_batch() -> ResponseReturnValue:
    """Create a batch of jobs with completion callbacks, all or none

    on_complete is queued once every job ended; on_success once every job completed
    (else it ends cancelled). Each is queued exactly once, by the script that ends
    the batch's last job. Jobs may carry depends_on.
    """
    req = _body(BatchesRequest, validation.MAX_BATCH_BODY_BYTES)
    trace = _traceparent()
    batch_id, done, callbacks = state().store.create_batch(
        [j.submission(trace) for j in req.jobs],
        queue=req.queue,
        on_complete=req.on_complete.submission(trace) if req.on_complete else None,
        on_success=req.on_success.submission(trace) if req.on_success else None,
        callback_queue=req.callback_queue,
    )
    answer = BatchCreated.model_validate(
        {"id": batch_id, "count": len(done.ids), "ids": done.ids, "statuses": done.statuses}
        | callbacks
    )
    return answer.to_api(), 202, {"Location": f"{request.script_root}/batches/{batch_id}"}


@bp.get("/batches/<batch_id>")
@doc.operation(
    "getBatch",
    {"200": ("The batch.", "BatchView")},
    {"404": "NotFound", **doc.READ},
    params=(_BATCH_ID,),
)
def get_batch(batch_id: str) -> ResponseReturnValue:
    """A batch's counts and callbacks"""
    return _batch_view(state().store.batch(_id(batch_id, BatchNotFound))).to_api()


@bp.post("/batches/<batch_id>/cancel")
@doc.operation(
    "cancelBatch",
    {"200": ("The batch after the cancellation.", "BatchView")},
    {"404": "NotFound", "415": "UnsupportedMediaType", **doc.READ},
    params=(_BATCH_ID,),
)
def cancel_batch(batch_id: str) -> ResponseReturnValue:
    """Cancel a batch

    Its waiting, queued and scheduled jobs end cancelled at once; running ones are
    asked to stop. on_success will not run; on_complete runs once every job ended.
    """
    return _batch_view(state().store.cancel_batch(_id(batch_id, BatchNotFound))).to_api()


@bp.post("/workflows")
@doc.operation(
    "createWorkflow",
    {"202": ("Every step's job exists. `Location` is the workflow's URL.", "WorkflowCreated")},
    {**doc.SUBMIT, "413": "BatchTooLarge"},
    "WorkflowRequest",
    extra={"headers": {"Location": {"schema": {"type": "string"}}}},
)
def create_workflow() -> ResponseReturnValue:
    """Create a workflow of named steps (a DAG), all or none

    A step runs once every step of its `after` completed; when one fails for good or
    is cancelled, it ends cancelled (unless on_parent_failure is run).
    """
    req = _body(WorkflowRequest, validation.MAX_BATCH_BODY_BYTES)
    trace = _traceparent()
    workflow_id, steps, statuses = state().store.create_workflow(
        [(s.name, s.after, s.submission(trace)) for s in req.steps], queue=req.queue
    )
    views = _steps(steps, statuses)
    answer = WorkflowCreated(id=workflow_id, queue=req.queue, steps=views)
    return answer.to_api(), 202, {"Location": f"{request.script_root}/workflows/{workflow_id}"}


@bp.get("/workflows/<workflow_id>")
@doc.operation(
    "getWorkflow",
    {"200": ("The workflow.", "WorkflowView")},
    {"404": "NotFound", **doc.READ},
    params=(_WORKFLOW_ID,),
)
def get_workflow(workflow_id: str) -> ResponseReturnValue:
    """A workflow's graph and each step's status"""
    info = state().store.workflow(_id(workflow_id, WorkflowNotFound))
    views = _steps(info.steps, [s.status for s in info.steps])
    # A step without a status has expired, which only an ended job does.
    ended = [v.status for v in views if v.status is None or v.status in FINAL_STATUSES]
    status: Literal["running", "completed", "failed"] = "running"
    if len(ended) == len(views):
        status = "completed" if all(e in ("completed", None) for e in ended) else "failed"
    view = WorkflowView(
        id=info.id, queue=info.queue, created_at=info.created_at, status=status, steps=views
    )
    return view.to_api()


def _steps(steps: list[Step], statuses: Sequence[str | None]) -> list[StepView]:
    return [
        StepView.model_validate(
            {"name": s.name, "id": s.id, "task": s.task, "after": s.after, "status": st}
        )
        for s, st in zip(steps, statuses, strict=True)
    ]


def _id(text: str, missing: type[JobNotFound]) -> str:
    """The canonical form of a batch or workflow id (a UUID); else `missing` (404)."""
    try:
        return validation.canonical_job_id(text)
    except JobNotFound:
        raise missing(text[:100]) from None
