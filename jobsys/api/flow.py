"""The flow-control endpoints (docs/flow-control.md): pause and resume a queue;
promote, retry and re-prioritise one job by id.

Admin-only, as every endpoint missing from api/auth.py's ACCESS table. Each
handler validates, calls the Store's `flow`, serialises.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from jobsys.api import operations as doc
from jobsys.api import validation
from jobsys.api.headers import param
from jobsys.api.routes import state
from jobsys.api.schemas import QueueLimits, QueueState
from jobsys.errors import QueueNotFound
from jobsys.models import check_queue_name

bp = Blueprint("jobsys_flow", __name__)
_QUEUE = param("path", "name", None, type="string")


@bp.post("/queues/<name>/pause")
@doc.operation(
    "pauseQueue",
    {"200": ("The queue is paused.", "QueueState")},
    {"404": "NotFound", "415": "UnsupportedMediaType", **doc.READ},
    params=(_QUEUE,),
)
def pause_queue(name: str) -> ResponseReturnValue:
    """Pause a queue

    Submits are still accepted; no worker starts a job of the queue until it is
    resumed; running jobs finish. A pause survives restarts (it is kept in Redis).
    Pausing a paused queue changes nothing.
    """
    paused = state().store.flow.set_paused(_queue(name), True)
    return QueueState(name=name, paused=paused).to_api()


@bp.post("/queues/<name>/resume")
@doc.operation(
    "resumeQueue",
    {"200": ("The queue is running.", "QueueState")},
    {"404": "NotFound", "415": "UnsupportedMediaType", **doc.READ},
    params=(_QUEUE,),
)
def resume_queue(name: str) -> ResponseReturnValue:
    """Resume a paused queue

    Workers start its waiting jobs again at once.
    """
    paused = state().store.flow.set_paused(_queue(name), False)
    return QueueState(name=name, paused=paused).to_api()


@bp.get("/queues/<name>/limits")
@doc.operation(
    "getQueueLimits",
    {"200": ("Its limits, and those of its tasks.", "QueueLimits")},
    {"404": "NotFound", **doc.READ},
    params=(_QUEUE,),
)
def queue_limits(name: str) -> ResponseReturnValue:
    """A queue's pause, rate and concurrency limits"""
    flow = state().store.flow.state(_queue(name))
    return QueueLimits.model_validate({"name": name, **flow.to_api()}).to_api()


@bp.put("/queues/<name>/limits")
@doc.operation(
    "putQueueLimits",
    {"200": ("All its limits afterwards.", "QueueLimits")},
    {**doc.WRITE, "404": "NotFound", **doc.READ},
    "LimitsRequest",
    params=(_QUEUE,),
)
def put_queue_limits(name: str) -> ResponseReturnValue:
    """Set a queue's (or one of its tasks') rate and concurrency limits

    Sets exactly the limits given (an absent or null one is removed) of the queue, or
    of `task` in it. Enforced by every claim, across all workers, with the Redis
    clock: at most `rate.limit` starts in any `rate.period_seconds`, and at most
    `concurrency` running jobs per `concurrency_key`. See docs/flow-control.md.
    """
    queue = _queue(name)
    body = validation.limits_request(request)
    rate = (body.rate.limit, body.rate.period_seconds) if body.rate else None
    flow = state().store.flow.set_limits(queue, body.task, rate, body.concurrency)
    return QueueLimits.model_validate({"name": name, **flow.to_api()}).to_api()


@bp.post("/jobs/<job_id>/promote")
@doc.operation(
    "promoteJob",
    {"200": ("The job, now queued and ready to run.", "Job")},
    {"404": "NotFound", "409": "StateConflict", "415": "UnsupportedMediaType", **doc.READ},
    params=(doc.JOB_ID,),
)
def promote_job(job_id: str) -> ResponseReturnValue:
    """Run a scheduled or backing-off job now

    A `scheduled` job (delay or run_at) or a retry waiting out its backoff moves to
    the ready jobs at its place (its rank), as if its due time had come now. One
    atomic step (promote.lua).
    """
    job_id = validation.canonical_job_id(job_id)
    store = state().store
    store.flow.promote(job_id)
    return store.get(job_id).to_api()


@bp.post("/jobs/<job_id>/retry")
@doc.operation(
    "retryJob",
    {"200": ("The job, queued again.", "Job")},
    {"404": "NotFound", "409": "StateConflict", "415": "UnsupportedMediaType", **doc.READ},
    params=(doc.JOB_ID,),
)
def retry_job(job_id: str) -> ResponseReturnValue:
    """Queue a failed job again

    As POST /dead-letter/retry for one job: attempts back at 0, out of the dead
    letter, queued behind the jobs waiting. One atomic step (replay.lua).
    """
    job_id = validation.canonical_job_id(job_id)
    store = state().store
    store.flow.retry(job_id)
    return store.get(job_id).to_api()


@bp.patch("/jobs/<job_id>")
@doc.operation(
    "patchJob",
    {"200": ("The job with its new priority.", "Job")},
    {**doc.WRITE, "404": "NotFound", "409": "StateConflict", **doc.READ},
    "JobPatch",
    params=(doc.JOB_ID,),
)
def patch_job(job_id: str) -> ResponseReturnValue:
    """Change a waiting job's priority

    Only a job that has not started (`queued` or `scheduled`). One atomic step
    (reprioritize.lua).
    """
    job_id = validation.canonical_job_id(job_id)
    body = validation.job_patch(request)
    store = state().store
    store.flow.reprioritize(job_id, body.priority)
    return store.get(job_id).to_api()


def _queue(name: str) -> str:
    """`name` if it is a valid queue name; anything else names no queue (404)."""
    try:
        return check_queue_name(name)
    except ValueError:
        raise QueueNotFound(name[:64]) from None
