"""The flow-control endpoints (docs/flow-control.md): pause and resume a queue;
promote, retry and re-prioritise one job by id.

Admin-only, as every endpoint missing from api/auth.py's ACCESS table. Each
handler validates, calls the Store's `flow`, serialises.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from jobsys.api import validation
from jobsys.api.routes import state
from jobsys.api.schemas import QueueLimits, QueueState
from jobsys.errors import QueueNotFound
from jobsys.models import check_queue_name

bp = Blueprint("jobsys_flow", __name__)


@bp.post("/queues/<name>/pause")
def pause_queue(name: str) -> ResponseReturnValue:
    """Pause a queue: 200 with its state; 404 for an unknown queue."""
    paused = state().store.flow.set_paused(_queue(name), True)
    return QueueState(name=name, paused=paused).to_api()


@bp.post("/queues/<name>/resume")
def resume_queue(name: str) -> ResponseReturnValue:
    """Resume a paused queue: 200 with its state; 404 for an unknown queue."""
    paused = state().store.flow.set_paused(_queue(name), False)
    return QueueState(name=name, paused=paused).to_api()


@bp.get("/queues/<name>/limits")
def queue_limits(name: str) -> ResponseReturnValue:
    """A queue's pause, rate and concurrency limits: 200; 404 for an unknown queue."""
    flow = state().store.flow.state(_queue(name))
    return QueueLimits.model_validate({"name": name, **flow.to_api()}).to_api()


@bp.put("/queues/<name>/limits")
def put_queue_limits(name: str) -> ResponseReturnValue:
    """Set the limits of a queue (or of one task in it): 200 with all its limits."""
    queue = _queue(name)
    body = validation.limits_request(request)
    rate = (body.rate.limit, body.rate.period_seconds) if body.rate else None
    flow = state().store.flow.set_limits(queue, body.task, rate, body.concurrency)
    return QueueLimits.model_validate({"name": name, **flow.to_api()}).to_api()


@bp.post("/jobs/<job_id>/promote")
def promote_job(job_id: str) -> ResponseReturnValue:
    """Run now a scheduled job or a retry in its backoff: 200 with the job; 409 in
    any other status; 404 when unknown."""
    job_id = validation.canonical_job_id(job_id)
    store = state().store
    store.flow.promote(job_id)
    return store.get(job_id).to_api()


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str) -> ResponseReturnValue:
    """Queue a failed job again (attempts 0, out of the dead letter): 200 with the
    job; 409 when it is not failed; 404 when unknown."""
    job_id = validation.canonical_job_id(job_id)
    store = state().store
    store.flow.retry(job_id)
    return store.get(job_id).to_api()


@bp.patch("/jobs/<job_id>")
def patch_job(job_id: str) -> ResponseReturnValue:
    """Change a waiting job's priority: 200 with the job; 409 once it has started;
    404 when unknown."""
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
