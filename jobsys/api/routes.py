"""The endpoints of the HTTP API. Each handler validates, calls the Store, serialises."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, current_app, request, url_for
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from jobsys.api import fastpath, openapi, query, validation
from jobsys.api import metrics as api_metrics
from jobsys.errors import ScheduleNotFound, StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store, Submission

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
    key = validation.idempotency_key(request)
    sub = req.submission(_traceparent())
    ids, replayed = _submit([sub], req.queue, key, req)
    status = "scheduled" if sub.delay_s > 0 or sub.run_at is not None else "queued"
    body: dict[str, Any] = {"status": status, "task": req.task, "id": ids[0]}
    headers = {"Location": url_for(".get_job", job_id=ids[0])}
    if replayed:
        return body | {"replayed": True}, 200, headers | {"Idempotent-Replayed": "true"}
    return body, 202, headers


@bp.post("/submit/batch")
def submit_batch() -> ResponseReturnValue:
    """Queue many jobs in one atomic step: 202 with their ids, in order."""
    body = validation.batch_body(request)
    plain = fastpath.plain_batch(body)
    req = validation.parse_batch(body) if plain is None else None
    key = validation.idempotency_key(request)
    trace = _traceparent()
    if plain is not None and key is None:
        ids = state().store.submit_many(plain.submissions(trace), queue=plain.queue)
        return {"status": "queued", "count": len(ids), "ids": ids}, 202
    if req is None:  # plain, with an Idempotency-Key: its fingerprint is the model's
        req = validation.parse_batch(body)
    subs = [j.submission(trace) for j in req.jobs]
    ids, replayed = _submit(subs, req.queue, key, req)
    body = {"status": "queued", "count": len(ids), "ids": ids}
    if replayed:
        return body | {"replayed": True}, 200, {"Idempotent-Replayed": "true"}
    return body, 202


def _traceparent() -> str:
    """The trace of this submit: the valid `traceparent` header, else a new one."""
    return validation.traceparent(request.headers.get(validation.TRACEPARENT_HEADER))


def _submit(
    subs: list[Submission], queue: str, key: str | None, body: BaseModel
) -> tuple[list[str], bool]:
    """Queue `subs`; with an Idempotency-Key, only once per key: (ids, replayed).

    "The same request" is the same path and the same validated body, whatever the
    order of its fields."""
    store = state().store
    if key is None:
        return store.submit_many(subs, queue=queue), False
    fingerprint = {"path": request.path, "body": body.model_dump(mode="json", exclude_unset=True)}
    return store.submit_idempotent(subs, queue=queue, key=key, request=fingerprint)


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
    return {"queues": [q.to_api() | {"throughput": throughput[q.name]} for q in stats]}


@bp.get("/workers")
def workers() -> ResponseReturnValue:
    """Every live worker: where it runs, what it serves and runs now, its counts."""
    st = state()
    live = st.store.live_workers(st.settings.worker_liveness_s)
    return {"workers": [w.to_api() for w in live]}


@bp.get("/metrics")
def metrics_text() -> ResponseReturnValue:
    """Prometheus metrics, from the counters in Redis (the same from every process)."""
    body = api_metrics.render(state().metrics)
    return body, 200, {"Content-Type": api_metrics.CONTENT_TYPE}


@bp.get("/schedules")
def list_schedules() -> ResponseReturnValue:
    """Every periodic schedule, with its next run."""
    return {"schedules": [s.to_api() for s in state().store.schedules.all()]}


@bp.post("/schedules")
def put_schedule() -> ResponseReturnValue:
    """Create (201) or replace (200) a periodic schedule, by name."""
    schedule = validation.schedule_request(request).schedule()
    schedules = state().store.schedules
    existed = any(s.name == schedule.name for s in schedules.all())
    schedules.put(schedule)
    return schedule.to_api(), 200 if existed else 201


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
        body: dict[str, Any] = {"status": "unavailable", "redis": HEALTH_FAILED}
        # Also the shape of every other error, for clients that handle them uniformly.
        body |= {"error": "store unavailable", "detail": HEALTH_FAILED}
        return body, 503
    return {"status": "ok", "redis": "ok"}


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 description of this API."""
    return openapi.document(state().settings.auth_enabled)


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    """A page of jobs, newest status change first, with the cursor of the next page."""
    q = query.list_query(request, with_status=True)
    page = state().store.list_jobs(
        status=q.status, task=q.task, queue=q.queue, limit=q.limit, cursor=q.cursor
    )
    return {"jobs": [j.to_api() for j in page.jobs], "next_cursor": page.next_cursor}


@bp.get("/dead-letter")
def dead_letter() -> ResponseReturnValue:
    """A page of dead jobs (newest first), and how many the queue(s) hold."""
    q = query.list_query(request, with_status=False)
    page, total = state().store.dead_letter(
        task=q.task, queue=q.queue, limit=q.limit, cursor=q.cursor
    )
    jobs = [j.to_api() for j in page.jobs]
    return {"jobs": jobs, "next_cursor": page.next_cursor, "total": total}


@bp.post("/dead-letter/retry")
def retry_dead() -> ResponseReturnValue:
    """Replay dead jobs (by id, or by filter, or all) in chunks: 200 with the count."""
    sel = query.selection(request)
    out = state().store.retry_dead(sel.ids, task=sel.task, queue=sel.queue)
    return {"retried": out.count, "ids": out.ids, "skipped": out.skipped}


@bp.post("/dead-letter/purge")
def purge_dead() -> ResponseReturnValue:
    """Delete dead jobs (by id, or by filter, or all) for good: 200 with the count."""
    sel = query.selection(request)
    out = state().store.purge_dead(sel.ids, task=sel.task, queue=sel.queue)
    return {"purged": out.count, "skipped": out.skipped}
