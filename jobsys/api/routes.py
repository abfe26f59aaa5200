"""The endpoints of the HTTP API. Each handler validates, calls the Store, serialises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, current_app, request, url_for
from flask.typing import ResponseReturnValue

from jobsys.api import openapi, validation
from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Store

bp = Blueprint("jobsys", __name__)

#: Key of `ApiState` in ``app.extensions``.
STATE_KEY = "jobsys"


@dataclass(frozen=True)
class ApiState:
    """What the handlers of one app share: its settings and its two Stores."""

    settings: Settings
    #: Submits and reads; short socket timeout so an outage is a prompt 503.
    store: Store
    #: Only PINGs for /health, on its own connections with an even shorter timeout,
    #: so a slow Redis cannot keep a health check waiting behind job traffic.
    health: Store


def state() -> ApiState:
    """The `ApiState` of the current app."""
    return cast(ApiState, current_app.extensions[STATE_KEY])


@bp.post("/submit")
def submit() -> ResponseReturnValue:
    """Queue one job: 202 with its id."""
    req = validation.submit_request(request)
    sub = req.submission()
    job_id = state().store.submit_many([sub], queue=req.queue)[0]
    status = "scheduled" if sub.delay_s > 0 or sub.run_at is not None else "queued"
    body = {"status": status, "task": req.task, "id": job_id}
    return body, 202, {"Location": url_for(".get_job", job_id=job_id)}


@bp.post("/submit/batch")
def submit_batch() -> ResponseReturnValue:
    """Queue many jobs in one atomic step: 202 with their ids, in order."""
    req = validation.batch_request(request)
    ids = state().store.submit_many([j.submission() for j in req.jobs], queue=req.jobs[0].queue)
    return {"status": "queued", "count": len(ids), "ids": ids}, 202


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    """One job's state (404 when there is none with this id)."""
    return state().store.get(validation.canonical_job_id(job_id)).to_api()


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Cancel a job: 200 with the job (`cancelled`, or still `processing` with
    `cancel_requested`); 409 when it has already ended."""
    return state().store.cancel(validation.canonical_job_id(job_id)).to_api()


@bp.get("/queues")
def queues() -> ResponseReturnValue:
    """Every queue with its depth (ready jobs), in-flight and scheduled counts."""
    return {"queues": [q.to_api() for q in state().store.queue_stats()]}


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 when Redis answers PING, else 503 (within about half a second)."""
    try:
        state().health.ping()
    except StoreUnavailable as e:
        reason = str(e)
        body: dict[str, Any] = {"status": "unavailable", "redis": reason}
        # Also the shape of every other error, for clients that handle them uniformly.
        body |= {"error": "store unavailable", "detail": reason}
        return body, 503
    return {"status": "ok", "redis": "ok"}


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 description of this API."""
    return openapi.document()
