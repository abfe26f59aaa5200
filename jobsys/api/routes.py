"""The endpoints of the HTTP API. Each handler validates, calls the Store, serialises."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, cast

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from jobsys.api import callbacks, catalog, errors, headers, openapi, validation
from jobsys.api import metrics as api_metrics
from jobsys.api import operations as doc
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
    Tasks,
    Workers,
    WorkerView,
)
from jobsys.api.waiting import Waiters
from jobsys.errors import ScheduleNotFound, StoreUnavailable
from jobsys.models import JobStatus
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store, Submission
from jobsys.store import Submitted as StoreSubmitted

bp = Blueprint("jobsys", __name__)
logger = logging.getLogger(__name__)

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
    #: The requests waiting for a job to end (GET /jobs/<id>?wait=).
    waiters: Waiters


def state() -> ApiState:
    """The `ApiState` of the current app."""
    return cast(ApiState, current_app.extensions[STATE_KEY])


@bp.post("/submit")
@doc.operation(
    "submitJob",
    {
        "202": ("Queued. `Location` is the job's URL.", "Submitted"),
        "200": (doc.REPEAT, "Submitted"),
    },
    doc.SUBMIT,
    "SubmitRequest",
    headers.SUBMIT_HEADERS,
    extra={
        "headers": {"Location": {"schema": {"type": "string"}}},
        "links": {"GetJob": doc.GET_JOB},
    },
)
def submit() -> ResponseReturnValue:
    """Queue a job"""
    req = validation.submit_request(request)
    key = headers.idempotency_key(request.headers.get(headers.IDEMPOTENCY_HEADER))
    subs, queue = catalog.for_app(current_app).prepare(
        [req], [req.submission(_traceparent())], req.queue, "queue" in req.model_fields_set
    )
    done = _submit(subs, queue, key, req)
    ids, replayed = done.ids, done.replayed
    body = submitted(req, done.statuses[0], ids[0]).to_api()
    location = {"Location": job_location(request.script_root, ids[0])}
    if done.duplicate:  # flow control: a unique key held by that job (docs/flow-control.md)
        body = Submitted(
            status=JobStatus(done.statuses[0]),
            task=done.task or req.task,
            id=ids[0],
            duplicate=True,
        ).to_api()
        return body, 200, location
    if replayed:
        return body | {"replayed": True}, 200, location | {"Idempotent-Replayed": "true"}
    return body, 202, location


def submitted(req: validation.SubmitRequest, status: str, job_id: str) -> Submitted:
    """The answer to a submit of `req` that was queued as `job_id` with `status` (as
    the store reports it: "scheduled" only when due later by the Redis clock)."""
    shown = JobStatus.QUEUED
    if status in ("scheduled", "waiting", "cancelled"):  # the last two: depends_on
        shown = JobStatus(status)
    return Submitted(status=shown, task=req.task, id=job_id)


def job_location(script_root: str, job_id: str) -> str:
    """The URL of a job (the Location of a submit's answer), under `script_root`."""
    return f"{script_root}/jobs/{job_id}"


@bp.post("/submit/batch")
@doc.operation(
    "submitBatch",
    {"202": ("All the jobs are queued.", "BatchSubmitted"), "200": (doc.REPEAT, "BatchSubmitted")},
    doc.SUBMIT | {"413": "BatchTooLarge"},
    "BatchRequest",
    headers.SUBMIT_HEADERS,
)
def submit_batch() -> ResponseReturnValue:
    """Queue many jobs at once, all or none"""
    req = validation.batch_request(request)
    key = headers.idempotency_key(request.headers.get(headers.IDEMPOTENCY_HEADER))
    trace = _traceparent()
    subs, queue = catalog.for_app(current_app).prepare(
        req.jobs, [j.submission(trace) for j in req.jobs], req.queue, True
    )
    done = _submit(subs, queue, key, req)
    ids, replayed = done.ids, done.replayed
    body = batch_submitted(ids, done.statuses).to_api()
    if replayed:
        return body | {"replayed": True}, 200, {"Idempotent-Replayed": "true"}
    return body, 202


def batch_submitted(ids: list[str], statuses: list[str] | None = None) -> BatchSubmitted:
    """The answer to a batch submit whose jobs were queued as `ids`, with `statuses`
    when a depends_on left one `waiting` or `cancelled` (workflows)."""
    shown = statuses if statuses and ("waiting" in statuses or "cancelled" in statuses) else None
    return BatchSubmitted.model_validate(
        {"status": "queued", "count": len(ids), "ids": ids, "statuses": shown}
    )


def _traceparent() -> str:
    """The trace of this submit: the valid `traceparent` header, else a new one."""
    return headers.traceparent(request.headers.get(headers.TRACEPARENT_HEADER))


def _submit(subs: list[Submission], queue: str, key: str | None, body: BaseModel) -> StoreSubmitted:
    """Queue `subs`; with an Idempotency-Key, only once per key (in the whole
    deployment).

    "The same request" is the same path and the same validated body, whatever the
    order of its fields."""
    callbacks.check(subs, state().settings)
    if key is None:
        return state().store.submit_jobs(subs, queue=queue)
    fingerprint = {"path": request.path, "body": body.model_dump(mode="json", exclude_unset=True)}
    return state().store.submit_jobs(subs, queue=queue, key=key, request=fingerprint)


@bp.get("/jobs/<job_id>")
@doc.operation(
    "getJob",
    {"200": ("The job.", "Job")},
    {"400": "BadQuery", "404": "NotFound", **doc.READ},
    params=(
        doc.JOB_ID | {"description": "The id `POST /submit` returned. Anything else is a 404."},
        *doc.query_params(validation.JobGetQuery),
    ),
)
def get_job(job_id: str) -> ResponseReturnValue:
    """A job's state

    With `wait`, a long-poll: the answer comes as soon as the job is completed,
    failed, cancelled or expired, or with its state when the time is up
    (docs/events.md).
    """
    # The long-poll waits in api/waiting.py.
    job_id = validation.canonical_job_id(job_id)
    wait = validation.list_query(request, validation.JobGetQuery).wait
    store = state().store
    job = store.get(job_id)
    if wait:
        job = state().waiters.wait(job, wait, lambda: store.get(job_id))
    return job.to_api()


@bp.post("/jobs/<job_id>/cancel")
@doc.operation(
    "cancelJob",
    {"200": ("The job after the cancellation.", "Job")},
    {"404": "NotFound", "409": "Conflict", "415": "UnsupportedMediaType", **doc.READ},
    params=(doc.JOB_ID,),
)
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Cancel a job

    A queued or scheduled job is cancelled at once and never runs. A running job is
    asked to stop: it shows `cancel_requested` until its worker stops it (or it
    finishes), then ends `cancelled`.
    """
    return state().store.cancel(validation.canonical_job_id(job_id)).to_api()


@bp.get("/queues")
@doc.operation("listQueues", {"200": ("The queues, by name.", "Queues")}, doc.READ)
def queues() -> ResponseReturnValue:
    """Every queue with its counts"""
    stats = state().store.queue_stats()
    throughput = state().store.throughput([q.name for q in stats])
    views = [
        QueueView.model_validate(asdict(q) | {"throughput": throughput[q.name]}) for q in stats
    ]
    return Queues(queues=views).to_api()


@bp.get("/workers")
@doc.operation("listWorkers", {"200": ("The live workers.", "Workers")}, doc.READ)
def workers() -> ResponseReturnValue:
    """Every live worker"""
    st = state()
    live = st.store.live_workers(st.settings.worker_liveness_s)
    views = [WorkerView.model_validate(w, from_attributes=True) for w in live]
    return Workers(workers=views).to_api()


@bp.get("/tasks")
@doc.operation("listTasks", {"200": ("The tasks, by name.", "Tasks")}, doc.READ)
def list_tasks() -> ResponseReturnValue:
    """Every task a live worker serves

    What live workers publish of their `@task` handlers: sync or async, the defaults
    a submit gets for the fields it leaves out (`queue` for POST /submit only), and
    the JSON Schema of a typed payload, which POST /submit checks (a 400 naming the
    field). A task a worker starts serving shows within about a second.
    """
    found = catalog.for_app(current_app).tasks()
    return Tasks.model_validate({"tasks": catalog.views(found)}).to_api()


@bp.get("/metrics")
@doc.operation(
    "metrics",
    {"200": ("The metrics.", None)},
    doc.READ,
    extra={"content": {"text/plain": {"schema": {"type": "string"}}}},
)
def metrics_text() -> ResponseReturnValue:
    """Prometheus metrics

    The Prometheus text exposition format (version 0.0.4), read from Redis at each
    scrape: every API process answers alike.
    """
    body = api_metrics.render(state().metrics)
    return body, 200, {"Content-Type": api_metrics.CONTENT_TYPE}


@bp.get("/schedules")
@doc.operation("listSchedules", {"200": ("The schedules, by name.", "Schedules")}, doc.READ)
def list_schedules() -> ResponseReturnValue:
    """Every periodic schedule"""
    views = [Schedule.model_validate(s.to_api()) for s in state().store.schedules.all()]
    return Schedules(schedules=views).to_api()


@bp.post("/schedules")
@doc.operation(
    "putSchedule",
    {"201": ("Created.", "Schedule"), "200": ("Replaced the schedule of that name.", "Schedule")},
    doc.WRITE | doc.READ | {"507": "StoreFull"},
    "ScheduleRequest",
)
def put_schedule() -> ResponseReturnValue:
    """Create or replace a periodic schedule

    At every tick of `cron` (UTC), exactly one job of `task` is queued, however many
    workers run. Ticks missed while no worker ran are coalesced into one job for the
    latest tick.
    """
    schedule = validation.schedule_request(request).schedule()
    schedules = state().store.schedules
    existed = any(s.name == schedule.name for s in schedules.all())
    schedules.put(schedule)
    return Schedule.model_validate(schedule.to_api()).to_api(), 200 if existed else 201


@bp.delete("/schedules/<name>")
@doc.operation(
    "deleteSchedule",
    {"204": ("Removed.", None)},
    {"404": "NotFound", "415": "UnsupportedMediaType", **doc.READ},
    params=(headers.param("path", "name", None, type="string"),),
)
def delete_schedule(name: str) -> ResponseReturnValue:
    """Remove a periodic schedule"""
    if not state().store.schedules.delete(name):
        raise ScheduleNotFound(name)
    return "", 204


@bp.get("/health")
@doc.operation(
    "health",
    {
        "200": ("Redis answered PING.", "Health"),
        "503": ("Redis did not answer PING within about half a second.", "Health"),
    },
)
def health() -> ResponseReturnValue:
    """Whether the API can reach Redis"""
    try:
        state().health.ping()
    except StoreUnavailable as e:
        # Anyone may call /health: the reason (Redis's host, port, error) goes to the log.
        logger.warning("health check failed: %s", e)
        # Also the shape of every other error, for clients that handle them uniformly.
        _, body = errors.store_error(e)
        detail = body["detail"]
        answer = Health(status="unavailable", redis=detail, error=body["error"], detail=detail)
        return answer.to_api(), 503
    return Health(status="ok", redis="ok").to_api()


@bp.get("/openapi.json")
@doc.operation(
    "openapi",
    {"200": ("The OpenAPI document.", None)},
    extra={"content": {"application/json": {"schema": {"type": "object"}}}},
)
def openapi_document() -> ResponseReturnValue:
    """This document"""
    return openapi.document(current_app, state().settings.auth_enabled)


@bp.get("/jobs")
@doc.operation(
    "listJobs",
    {"200": ("A page of jobs.", "JobPage")},
    {"400": "BadQuery", **doc.READ},
    params=doc.query_params(validation.JobQuery),
    shared=doc.LISTING,
)
def list_jobs() -> ResponseReturnValue:
    """List jobs, newest first, a page at a time"""
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
@doc.operation(
    "listDeadLetter",
    {"200": ("A page of dead jobs, with their error and history.", "DeadLetterPage")},
    {"400": "BadQuery", **doc.READ},
    params=doc.query_params(validation.DeadLetterQuery),
    shared=doc.LISTING,
)
def dead_letter() -> ResponseReturnValue:
    """Dead jobs (failed for good), newest first, a page at a time"""
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
@doc.operation(
    "retryDeadLetter",
    {"200": ("What was retried.", "Retried")},
    doc.WRITE | doc.READ,
    "DeadLetterSelection",
)
def retry_dead() -> ResponseReturnValue:
    """Retry dead jobs

    Each is queued again behind the jobs already waiting, with attempts back at 0, no
    expiry, and `replayed`/`replayed_at` recording it. Done in chunks of 500, each
    atomic; jobs that fail while a filtered retry runs are not part of it.
    """
    ids, task, queue = _selected()
    out = state().store.retry_dead(ids, task=task, queue=queue)
    return Retried(retried=out.count, ids=out.ids, skipped=out.skipped).to_api()


@bp.post("/dead-letter/purge")
@doc.operation(
    "purgeDeadLetter",
    {"200": ("What was deleted.", "Purged")},
    doc.WRITE | doc.READ,
    "DeadLetterSelection",
)
def purge_dead() -> ResponseReturnValue:
    """Delete dead jobs for good

    Deletes the jobs and their ids from the dead letter. Done in chunks of 500.
    """
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
