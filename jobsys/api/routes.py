"""The endpoints of the HTTP API. Each handler validates, calls the Store, serialises."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from jobsys.api import headers, openapi, validation
from jobsys.api import metrics as api_metrics
from jobsys.api.schemas import (
    BatchSubmitted,
    DeadLetterPage,
    Health,
    JobPage,
    Purged,
    Queues,
    QueueView,
    Retried,
    Schedule,
    Schedules,
    Submitted,
    Workers,
    WorkerView,
)
from jobsys.errors import ScheduleNotFound, StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store, Submission
from jobsys.store import Submitted as StoreSubmitted

bp = Blueprint("jobsys", __name__)
logger = logging.getLogger(__name__)

#: What a failed /health says; the reason is logged, never shown.
HEALTH_FAILED = "Redis is unavailable (the API's log has the reason)"

#: Key of `ApiState` in ``app.extensions``.
STATE_KEY = "jobsys"


@dataclass(frozen=True)
class ApiState:
    """What the handlers of one app share: its settings and its two Stores."""

    settings: Settings
    #: Submits and reads; short socket timeout so an outage is a prompt 503.
    store: Store
    #: PINGs for /health, on connections of its own within one total deadline, so a
    #: slow Redis cannot keep a health check waiting behind job traffic or handshakes.
    health: HealthProbe
    #: What GET /metrics renders (reads Redis at each scrape).
    metrics: CollectorRegistry


def state() -> ApiState:
    """The `ApiState` of the current app."""
    return cast(ApiState, current_app.extensions[STATE_KEY])


@bp.post("/submit")
def submit() -> ResponseReturnValue:
    """Queue one job: 202 with its id."""
    req = validation.submit_request(request)
    key = headers.idempotency_key(request.headers.get(headers.IDEMPOTENCY_HEADER))
    done = _submit([req.submission(_traceparent())], req.queue, key, req)
    ids, replayed = done.ids, done.replayed
    body = submitted(req, done.statuses[0], ids[0])
    location = {"Location": job_location(request.script_root, ids[0])}
    if replayed:
        return body | {"replayed": True}, 200, location | {"Idempotent-Replayed": "true"}
    return body, 202, location


def submitted(req: validation.SubmitRequest, status: str, job_id: str) -> dict[str, Any]:
    """The answer to a submit of `req` that was queued as `job_id` with `status` (as
    the store reports it: "scheduled" only when due later by the Redis clock)."""
    shown: Literal["queued", "scheduled", "waiting", "cancelled"] = "queued"
    if status in ("scheduled", "waiting", "cancelled"):  # the last two: depends_on
        shown = cast(Literal["scheduled", "waiting", "cancelled"], status)
    return Submitted(status=shown, task=req.task, id=job_id).to_api()


def job_location(script_root: str, job_id: str) -> str:
    """The URL of a job (the Location of a submit's answer), under `script_root`."""
    return f"{script_root}/jobs/{job_id}"


@bp.post("/submit/batch")
def submit_batch() -> ResponseReturnValue:
    """Queue many jobs in one atomic step: 202 with their ids, in order."""
    req = validation.batch_request(request)
    key = headers.idempotency_key(request.headers.get(headers.IDEMPOTENCY_HEADER))
    trace = _traceparent()
    done = _submit([j.submission(trace) for j in req.jobs], req.queue, key, req)
    ids, replayed = done.ids, done.replayed
    body = batch_submitted(ids, done.statuses)
    if replayed:
        return body | {"replayed": True}, 200, {"Idempotent-Replayed": "true"}
    return body, 202


def batch_submitted(ids: list[str], statuses: list[str] | None = None) -> dict[str, Any]:
    """The answer to a batch submit whose jobs were queued as `ids`, with `statuses`
    when a depends_on left one `waiting` or `cancelled` (workflows)."""
    shown = statuses if statuses and ("waiting" in statuses or "cancelled" in statuses) else None
    return BatchSubmitted.model_validate(
        {"status": "queued", "count": len(ids), "ids": ids, "statuses": shown}
    ).to_api()


def _traceparent() -> str:
    """The trace of this submit: the valid `traceparent` header, else a new one."""
    return headers.traceparent(request.headers.get(headers.TRACEPARENT_HEADER))


def _submit(subs: list[Submission], queue: str, key: str | None, body: BaseModel) -> StoreSubmitted:
    """Queue `subs`; with an Idempotency-Key, only once per key (in the whole
    deployment).

    "The same request" is the same path and the same validated body, whatever the
    order of its fields."""
    if key is None:
        return state().store.submit_jobs(subs, queue=queue)
    fingerprint = {"path": request.path, "body": body.model_dump(mode="json", exclude_unset=True)}
    return state().store.submit_jobs(subs, queue=queue, key=key, request=fingerprint)


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
    """Every queue with its depth (ready jobs), in-flight and scheduled counts, and its
    throughput of the last 15 minutes."""
    stats = state().store.queue_stats()
    throughput = state().store.throughput([q.name for q in stats])
    views = [
        QueueView.model_validate(asdict(q) | {"throughput": throughput[q.name]}) for q in stats
    ]
    return Queues(queues=views).to_api()


@bp.get("/workers")
def workers() -> ResponseReturnValue:
    """Every live worker: where it runs, what it serves and runs now, its counts."""
    st = state()
    live = st.store.live_workers(st.settings.worker_liveness_s)
    views = [WorkerView.model_validate(w, from_attributes=True) for w in live]
    return Workers(workers=views).to_api()


@bp.get("/metrics")
def metrics_text() -> ResponseReturnValue:
    """Prometheus metrics, from the counters in Redis (the same from every process)."""
    body = api_metrics.render(state().metrics)
    return body, 200, {"Content-Type": api_metrics.CONTENT_TYPE}


@bp.get("/schedules")
def list_schedules() -> ResponseReturnValue:
    """Every periodic schedule, with its next run."""
    views = [Schedule.model_validate(s.to_api()) for s in state().store.schedules.all()]
    return Schedules(schedules=views).to_api()


@bp.post("/schedules")
def put_schedule() -> ResponseReturnValue:
    """Create (201) or replace (200) a periodic schedule, by name."""
    schedule = validation.schedule_request(request).schedule()
    schedules = state().store.schedules
    existed = any(s.name == schedule.name for s in schedules.all())
    schedules.put(schedule)
    return Schedule.model_validate(schedule.to_api()).to_api(), 200 if existed else 201


@bp.delete("/schedules/<name>")
def delete_schedule(name: str) -> ResponseReturnValue:
    """Remove a periodic schedule: 204, or 404 when there is none by that name."""
    if not state().store.schedules.delete(name):
        raise ScheduleNotFound(name)
    return "", 204


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 when Redis answers PING within `HEALTH_DEADLINE_S` (half a second), else 503."""
    try:
        state().health.ping()
    except StoreUnavailable as e:
        # Anyone may call /health: the reason (Redis's host, port, error) goes to the log.
        logger.warning("health check failed: %s", e)
        # Also the shape of every other error, for clients that handle them uniformly.
        error = {"error": "store unavailable", "detail": HEALTH_FAILED}
        return Health(status="unavailable", redis=HEALTH_FAILED, **error).to_api(), 503
    return Health(status="ok", redis="ok").to_api()


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 description of this API."""
    return openapi.document(state().settings.auth_enabled)


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    """A page of jobs, newest status change first, with the cursor of the next page."""
    q = validation.list_query(request, validation.JobQuery)
    page = state().store.list_jobs(
        status=q.status,
        task=q.task,
        queue=q.queue,
        limit=q.limit,
        cursor=q.cursor,
        leave_out=q.left_out,
    )
    return _listed(JobPage(jobs=page.jobs, next_cursor=page.next_cursor), q)


@bp.get("/dead-letter")
def dead_letter() -> ResponseReturnValue:
    """A page of dead jobs (newest first), and how many the queue(s) hold."""
    q = validation.list_query(request, validation.DeadLetterQuery)
    page, total = state().store.dead_letter(
        task=q.task, queue=q.queue, limit=q.limit, cursor=q.cursor, leave_out=q.left_out
    )
    body = DeadLetterPage(jobs=page.jobs, next_cursor=page.next_cursor, total=total)
    return _listed(body, q)


def _listed(body: BaseModel, q: validation.DeadLetterQuery) -> dict[str, Any]:
    """The JSON of a page of jobs, without the fields its query did not ask for."""
    return body.model_dump(mode="json", exclude={"jobs": {"__all__": set(q.left_out)}})


@bp.post("/dead-letter/retry")
def retry_dead() -> ResponseReturnValue:
    """Replay dead jobs (by id, or by filter, or all) in chunks: 200 with the count."""
    ids, task, queue = _selected()
    out = state().store.retry_dead(ids, task=task, queue=queue)
    return Retried(retried=out.count, ids=out.ids, skipped=out.skipped).to_api()


@bp.post("/dead-letter/purge")
def purge_dead() -> ResponseReturnValue:
    """Delete dead jobs (by id, or by filter, or all) for good: 200 with the count."""
    ids, task, queue = _selected()
    out = state().store.purge_dead(ids, task=task, queue=queue)
    return Purged(purged=out.count, skipped=out.skipped).to_api()


def _selected() -> tuple[list[str] | None, str | None, str | None]:
    """The dead jobs a retry or purge acts on: (ids, task, queue); all None: every one."""
    sel = validation.selection(request)
    if isinstance(sel, validation.ByIds):
        return sel.ids, None, None
    if isinstance(sel, validation.ByFilter):
        return None, sel.task, sel.queue
    return None, None, None
