"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Every schema is generated from the model that validates the request
(`jobsys.api.validation`) or shapes the answer (`jobsys.api.schemas`,
`jobsys.models.Job`); the query parameters from the query models. What is written
here is what no model knows: each route's summary, statuses and headers, and the
security requirements, taken from the access table of api/auth.py. Tests check that
it names every route and status the API answers with, since the API is fuzzed
against this document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

import jobsys
from jobsys.api import schemas
from jobsys.api.auth import Access, access_for
from jobsys.api.errors import ERROR_HEADERS, ERRORS
from jobsys.api.headers import REQUEST_ID_HEADER, SUBMIT_HEADERS, param
from jobsys.api.validation import (
    BatchRequest,
    DeadLetterQuery,
    JobPatch,
    JobQuery,
    LimitsRequest,
    ScheduleRequest,
    Selection,
    SubmitRequest,
)
from jobsys.models import Job

_REF = "#/components/schemas/{model}"
_REQUEST_ID = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}

#: The models of components.schemas, each under its name (and its nested models under theirs).
_MODELS: dict[str, Any] = {
    m.__name__: m
    for m in (
        SubmitRequest,
        BatchRequest,
        ScheduleRequest,
        JobPatch,
        LimitsRequest,
        Job,
        *schemas.ANSWERS,
    )
} | {"DeadLetterSelection": Selection}

#: Every operation may answer these.
_COMMON = {"405": "MethodNotAllowed", "500": "InternalError"}
_WRITE = {"400": "BadRequest", "413": "PayloadTooLarge", "415": "UnsupportedMediaType"}
_SUBMIT = {**_WRITE, "409": "IdempotencyConflict", "503": "StoreUnavailable", "507": "StoreFull"}
_READ = {"503": "StoreUnavailable"}

_REPEAT = "A repeat of an earlier request with the same Idempotency-Key: nothing new was queued."
_LISTING = (
    "Newest first: by the time each job entered its current status, ties by id. Paging "
    "with `cursor` is stable while jobs move. The status and queue filters are exact; "
    "the task filter examines at most 2000 entries per request, so a page may hold fewer "
    "jobs than `limit` (even none) and still have a `next_cursor`: keep following it "
    "until it is null."
)


def _query_params(model: type[BaseModel]) -> tuple[dict[str, Any], ...]:
    """One optional query parameter per field of `model`."""
    props = model.model_json_schema(ref_template=_REF)["properties"]
    return tuple(
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": schema.pop("description"),
            "schema": {k: v for k, v in schema.items() if k != "title"},
        }
        for name, schema in props.items()
    )


@dataclass(frozen=True)
class Route:
    """What the document says of one operation beyond its schemas."""

    operation_id: str
    summary: str
    #: Success statuses: (description, component schema; None: no JSON body).
    ok: dict[str, tuple[str, str | None]]
    #: Error statuses: the name of the response in `ERRORS`.
    errors: dict[str, str] = field(default_factory=dict)
    #: The component schema of the JSON body, if any.
    body: str | None = None
    params: tuple[dict[str, Any], ...] = ()
    description: str | None = None
    #: More of the first success response: headers, links, other content.
    extra: dict[str, Any] = field(default_factory=dict)


_JOB_ID = param("path", "job_id", None, type="string", format="uuid")
_QUEUE = param("path", "name", None, type="string")
_GET_JOB = {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}}
_ROUTES = {
    "POST /submit": Route(
        "submitJob",
        "Queue a job",
        {
            "202": ("Queued. `Location` is the job's URL.", "Submitted"),
            "200": (_REPEAT, "Submitted"),
        },
        _SUBMIT,
        "SubmitRequest",
        SUBMIT_HEADERS,
        extra={
            "headers": {"Location": {"schema": {"type": "string"}}},
            "links": {"GetJob": _GET_JOB},
        },
    ),
    "POST /submit/batch": Route(
        "submitBatch",
        "Queue many jobs at once, all or none",
        {"202": ("All the jobs are queued.", "BatchSubmitted"), "200": (_REPEAT, "BatchSubmitted")},
        _SUBMIT | {"413": "BatchTooLarge"},
        "BatchRequest",
        SUBMIT_HEADERS,
    ),
    "GET /jobs": Route(
        "listJobs",
        "List jobs, newest first, a page at a time",
        {"200": ("A page of jobs.", "JobPage")},
        {"400": "BadQuery", **_READ},
        params=_query_params(JobQuery),
        description=_LISTING,
    ),
    "GET /dead-letter": Route(
        "listDeadLetter",
        "Dead jobs (failed for good), newest first, a page at a time",
        {"200": ("A page of dead jobs, with their error and history.", "DeadLetterPage")},
        {"400": "BadQuery", **_READ},
        params=_query_params(DeadLetterQuery),
        description=_LISTING,
    ),
    "POST /dead-letter/retry": Route(
        "retryDeadLetter",
        "Retry dead jobs",
        {"200": ("What was retried.", "Retried")},
        _WRITE | _READ,
        "DeadLetterSelection",
        description="Each is queued again behind the jobs already waiting, with attempts back "
        "at 0, no expiry, and `replayed`/`replayed_at` recording it. Done in chunks of 500, "
        "each atomic; jobs that fail while a filtered retry runs are not part of it.",
    ),
    "POST /dead-letter/purge": Route(
        "purgeDeadLetter",
        "Delete dead jobs for good",
        {"200": ("What was deleted.", "Purged")},
        _WRITE | _READ,
        "DeadLetterSelection",
        description="Deletes the jobs and their ids from the dead letter. Done in chunks of 500.",
    ),
    "GET /jobs/{job_id}": Route(
        "getJob",
        "A job's state",
        {"200": ("The job.", "Job")},
        {"404": "NotFound", **_READ},
        params=(
            {**_JOB_ID, "description": "The id `POST /submit` returned. Anything else is a 404."},
        ),
    ),
    "POST /jobs/{job_id}/cancel": Route(
        "cancelJob",
        "Cancel a job",
        {"200": ("The job after the cancellation.", "Job")},
        {"404": "NotFound", "409": "Conflict", "415": "UnsupportedMediaType", **_READ},
        params=(_JOB_ID,),
        description="A queued or scheduled job is cancelled at once and never runs. A running "
        "job is asked to stop: it shows `cancel_requested` until its worker stops it (or it "
        "finishes), then ends `cancelled`.",
    ),
    "GET /queues": Route(
        "listQueues",
        "Every queue with its counts",
        {"200": ("The queues, by name.", "Queues")},
        _READ,
    ),
    # flow control (docs/flow-control.md)
    "POST /queues/{name}/pause": Route(
        "pauseQueue",
        "Pause a queue",
        {"200": ("The queue is paused.", "QueueState")},
        {"404": "NotFound", "415": "UnsupportedMediaType", **_READ},
        params=(_QUEUE,),
        description="Submits are still accepted; no worker starts a job of the queue until it "
        "is resumed; running jobs finish. A pause survives restarts (it is kept in Redis). "
        "Pausing a paused queue changes nothing.",
    ),
    "POST /queues/{name}/resume": Route(
        "resumeQueue",
        "Resume a paused queue",
        {"200": ("The queue is running.", "QueueState")},
        {"404": "NotFound", "415": "UnsupportedMediaType", **_READ},
        params=(_QUEUE,),
        description="Workers start its waiting jobs again at once.",
    ),
    "GET /queues/{name}/limits": Route(
        "getQueueLimits",
        "A queue's pause, rate and concurrency limits",
        {"200": ("Its limits, and those of its tasks.", "QueueLimits")},
        {"404": "NotFound", **_READ},
        params=(_QUEUE,),
    ),
    "PUT /queues/{name}/limits": Route(
        "putQueueLimits",
        "Set a queue's (or one of its tasks') rate and concurrency limits",
        {"200": ("All its limits afterwards.", "QueueLimits")},
        {**_WRITE, "404": "NotFound", **_READ},
        "LimitsRequest",
        params=(_QUEUE,),
        description="Sets exactly the limits given (an absent or null one is removed) of the "
        "queue, or of `task` in it. Enforced by every claim, across all workers, with the "
        "Redis clock: at most `rate.limit` starts in any `rate.period_seconds`, and at most "
        "`concurrency` running jobs per `concurrency_key`. See docs/flow-control.md.",
    ),
    "POST /jobs/{job_id}/promote": Route(
        "promoteJob",
        "Run a scheduled or backing-off job now",
        {"200": ("The job, now queued and ready to run.", "Job")},
        {"404": "NotFound", "409": "StateConflict", "415": "UnsupportedMediaType", **_READ},
        params=(_JOB_ID,),
        description="A `scheduled` job (delay or run_at) or a retry waiting out its backoff "
        "moves to the ready jobs at its place (its rank), as if its due time had come now. "
        "One atomic step (promote.lua).",
    ),
    "POST /jobs/{job_id}/retry": Route(
        "retryJob",
        "Queue a failed job again",
        {"200": ("The job, queued again.", "Job")},
        {"404": "NotFound", "409": "StateConflict", "415": "UnsupportedMediaType", **_READ},
        params=(_JOB_ID,),
        description="As POST /dead-letter/retry for one job: attempts back at 0, out of the "
        "dead letter, queued behind the jobs waiting. One atomic step (replay.lua).",
    ),
    "PATCH /jobs/{job_id}": Route(
        "patchJob",
        "Change a waiting job's priority",
        {"200": ("The job with its new priority.", "Job")},
        {**_WRITE, "404": "NotFound", "409": "StateConflict", **_READ},
        "JobPatch",
        params=(_JOB_ID,),
        description="Only a job that has not started (`queued` or `scheduled`). One atomic "
        "step (reprioritize.lua).",
    ),
    "GET /workers": Route(
        "listWorkers", "Every live worker", {"200": ("The live workers.", "Workers")}, _READ
    ),
    "GET /metrics": Route(
        "metrics",
        "Prometheus metrics",
        {"200": ("The metrics.", None)},
        _READ,
        description="The Prometheus text exposition format (version 0.0.4), read from Redis at "
        "each scrape: every API process answers alike.",
        extra={"content": {"text/plain": {"schema": {"type": "string"}}}},
    ),
    "GET /schedules": Route(
        "listSchedules",
        "Every periodic schedule",
        {"200": ("The schedules, by name.", "Schedules")},
        _READ,
    ),
    "POST /schedules": Route(
        "putSchedule",
        "Create or replace a periodic schedule",
        {
            "201": ("Created.", "Schedule"),
            "200": ("Replaced the schedule of that name.", "Schedule"),
        },
        _WRITE | _READ | {"507": "StoreFull"},
        "ScheduleRequest",
        description="At every tick of `cron` (UTC), exactly one job of `task` is queued, however "
        "many workers run. Ticks missed while no worker ran are coalesced into one job for the "
        "latest tick.",
    ),
    "DELETE /schedules/{name}": Route(
        "deleteSchedule",
        "Remove a periodic schedule",
        {"204": ("Removed.", None)},
        {"404": "NotFound", "415": "UnsupportedMediaType", **_READ},
        params=(param("path", "name", None, type="string"),),
    ),
    "GET /health": Route(
        "health",
        "Whether the API can reach Redis",
        {
            "200": ("Redis answered PING.", "Health"),
            "503": ("Redis did not answer PING within about half a second.", "Health"),
        },
    ),
    "GET /auth/whoami": Route(
        "whoami",
        "The role of the request's token",
        {"200": ("`open` when the API has no tokens configured.", "WhoAmI")},
    ),
    "GET /openapi.json": Route(
        "openapi",
        "This document",
        {"200": ("The OpenAPI document.", None)},
        extra={"content": {"application/json": {"schema": {"type": "object"}}}},
    ),
}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=schema_name)}}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, schema) in route.ok.items():
        ok: dict[str, Any] = {"description": description, "headers": dict(_REQUEST_ID)}
        if schema is not None:
            ok["content"] = _json(schema)
        if not responses:  # the first success response
            ok["headers"] |= route.extra.get("headers", {})
            ok |= {k: v for k, v in route.extra.items() if k != "headers"}
        responses[status] = ok
    for status, name in (route.errors | _COMMON).items():
        responses[status] = {"$ref": f"#/components/responses/{name}"}
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if route.description is not None:
        op["description"] = route.description
    if route.params:
        op["parameters"] = list(route.params)
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _json(route.body)}
    return op | {"responses": responses}


def _secure(paths: dict[str, Any], auth_enabled: bool) -> dict[str, Any]:
    """Give each operation its security requirement, its 401/403 answers (from the
    access table of api/auth.py, the one the API enforces) and the answers of
    api/guards.py: 400 for a Host not allowed (every route but /health, in either mode:
    JOBSYS_ALLOWED_HOSTS turns the check on with tokens too) and, with tokens, 429
    for an address locked out after failed tokens (every route)."""
    # Open mode: the token is optional (the empty requirement), which is what the API does.
    required: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    if not auth_enabled:
        required.append({})
    for path, ops in paths.items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, op in ops.items():
            access = access_for(method.upper(), rule)
            if rule != "/health":
                op["responses"].setdefault("400", {"$ref": "#/components/responses/HostNotAllowed"})
            if auth_enabled:
                op["responses"]["429"] = {"$ref": "#/components/responses/TooManyAttempts"}
            if access is Access.PUBLIC:
                op["security"] = []
                continue
            op["security"] = required
            op["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
            if access is Access.ADMIN:
                op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
    return paths


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, model in _MODELS.items():
        schema = TypeAdapter(model).json_schema(ref_template=_REF)
        out |= schema.pop("$defs", {})
        out[name] = schema
    return out


def _error_response(name: str) -> dict[str, Any]:
    return {
        "description": ERRORS[name],
        "headers": _REQUEST_ID | ERROR_HEADERS.get(name, {}),
        "content": _json("Error"),
    }


@cache
def document(auth_enabled: bool = False) -> dict[str, Any]:
    """The whole OpenAPI document (built once per mode; treat it as read-only).

    Args:
        auth_enabled: whether the API has tokens configured (a bearer token is then
            required rather than optional).
    """
    paths: dict[str, Any] = {}
    for key, route in _ROUTES.items():
        method, path = key.split(" ")
        paths.setdefault(path, {})[method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsys",
            "version": jobsys.__version__,
            "description": (
                "Submit jobs and read their state. Every error is JSON "
                '`{"error": ..., "detail": ...}`; every response carries X-Request-ID.'
            ),
        },
        "paths": _secure(paths, auth_enabled),
        "components": {
            "schemas": _schemas(),
            "responses": {name: _error_response(name) for name in ERRORS},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A producer token (JOBSYS_PRODUCER_TOKENS) may submit and make every "
                        "GET; an admin token (JOBSYS_ADMIN_TOKENS) may do anything. With no "
                        "token configured the API is open and the header is ignored."
                    ),
                }
            },
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
        },
    }
