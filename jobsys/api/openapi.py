"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

The request schema comes from the pydantic model that validates it; the rest is
written out here. Tests check that it names every route and status the API
answers with, since the API is fuzzed against this document.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jobsys
from jobsys.api.auth import CHALLENGE, Access, access_for
from jobsys.api.query import JOB_ID_PATTERN, MAX_IDS
from jobsys.api.validation import (
    MAX_BATCH_BODY_BYTES,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_TASK_CHARS,
    BatchRequest,
    ScheduleRequest,
    SubmitRequest,
    printable_pattern,
)
from jobsys.models import MAX_PRIORITY, MIN_PRIORITY, QUEUE_NAME_PATTERN, JobStatus
from jobsys.store import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, WorkerInfo

_REF = "#/components/schemas/{model}"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref("schemas", schema_name)}}


def _error(description: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID"), **(extra_headers or {})},
        "content": _json("Error"),
    }


def _ok(description: str, schema_name: str, **headers: Any) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID"), **headers},
        "content": _json(schema_name),
    }


_DATE_TIME = {"type": "string", "format": "date-time"}
_TRACEPARENT_PATTERN = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_TRACEPARENT_PARAM = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "description": (
        "W3C trace context the jobs belong to; stored with each job, shown by GET "
        "/jobs/{job_id} and in the worker's log lines of the job. A header that is not a "
        "valid traceparent is ignored; without a valid one the API starts a new trace."
    ),
    "schema": {"type": "string"},
}
_COUNT = {"type": "integer", "minimum": 0}

_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One job. Fields that are not set yet are left out.",
    "required": ["id", "status", "task", "created_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "task": {"type": "string"},
        "queue": {"type": "string"},
        "priority": {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY},
        "payload": {"description": "The payload as submitted (absent when none was given)."},
        "created_at": _DATE_TIME,
        "run_at": {
            **_DATE_TIME,
            "description": "When a job submitted with a delay or run_at became (or becomes) due.",
        },
        "schedule": {"type": "string", "description": "The periodic schedule that made it."},
        "tick": {**_DATE_TIME, "description": "The tick of that schedule it was made for."},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        "progress": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "How far the running handler says it has got.",
        },
        "progress_message": {"type": "string"},
        "attempts": {"type": "integer", "minimum": 0},
        "max_retries": {"type": "integer", "minimum": 0},
        "started_at": _DATE_TIME,
        "worker": {"type": "string"},
        "next_attempt_at": _DATE_TIME,
        "result": {"description": "The task's return value (once completed)."},
        "completed_at": _DATE_TIME,
        "error": {"type": "string", "description": "The last attempt's error."},
        "failed_at": _DATE_TIME,
        "cancel_requested": {
            "type": "boolean",
            "description": "Present (true) while a running job's cancellation is pending.",
        },
        "cancelled_at": _DATE_TIME,
        "history": {
            "type": "array",
            "description": "The failed attempts, oldest first (at most the last 20).",
            "items": {
                "type": "object",
                "required": ["attempt", "ended_at", "error"],
                "properties": {
                    "attempt": {"type": "integer", "minimum": 1},
                    "worker": {"type": "string"},
                    "started_at": _DATE_TIME,
                    "ended_at": _DATE_TIME,
                    "error": {"type": "string"},
                },
            },
        },
        "replayed": {
            "type": "integer",
            "minimum": 1,
            "description": "Times the job was retried from the dead letter.",
        },
        "replayed_at": {**_DATE_TIME, "description": "When it was last retried from there."},
        "traceparent": {
            "type": "string",
            "pattern": _TRACEPARENT_PATTERN,
            "description": "The W3C trace context of the submit (its valid `traceparent` "
            "header, else a new trace the API started).",
        },
    },
}

_CURSOR = {
    "type": ["string", "null"],
    "pattern": CURSOR_PATTERN,
    "description": "Pass it as `cursor` for the next page; null on the last page.",
}
_TASK_FILTER = {"type": "string", "minLength": 1, "maxLength": MAX_TASK_CHARS}
_QUEUE_FILTER = {"type": "string", "pattern": QUEUE_NAME_PATTERN}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_LIST_PARAMS = [
    _query("task", _TASK_FILTER, "Only jobs of this task. Not indexed: see the description."),
    _query("queue", _QUEUE_FILTER, "Only jobs of this queue (default: every queue)."),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"Most jobs in the page (1 to {MAX_LIMIT}; default {DEFAULT_LIMIT}).",
    ),
    _query(
        "cursor",
        {"type": "string", "pattern": CURSOR_PATTERN},
        "The `next_cursor` of the previous page (opaque).",
    ),
]
_LISTING_DESCRIPTION = (
    "Newest first: by the time each job entered its current status, ties by id. Paging "
    "with `cursor` is stable while jobs move. The status and queue filters are exact; "
    "the task filter examines at most 2000 entries per request, so a page may hold fewer "
    "jobs than `limit` (even none) and still have a `next_cursor`: keep following it "
    "until it is null."
)
_SELECTION = {
    "description": (
        "Which dead jobs: `ids` (unknown ones are skipped and counted), or every dead job "
        "of a `task` and/or `queue`, or `all`."
    ),
    "oneOf": [
        {
            "type": "object",
            "title": "ByIds",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {
                "ids": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_IDS,
                    "items": {"type": "string", "pattern": JOB_ID_PATTERN},
                }
            },
        },
        {
            "type": "object",
            "title": "All",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {"all": {"const": True}},
        },
        {
            "type": "object",
            "title": "ByFilter",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {"task": _TASK_FILTER, "queue": _QUEUE_FILTER},
        },
    ],
}

_REPLAYED = {
    "const": True,
    "description": "Present when an Idempotency-Key repeated an earlier request: nothing "
    "new was queued and these are the earlier request's ids.",
}
_IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to retry: repeated with the same key and the same body "
        "within IDEMPOTENCY_TTL_SECONDS (default one day), it queues nothing and answers "
        "200 with the first request's ids; with the same key and another body, 409."
    ),
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}

_SCHEMAS: dict[str, Any] = {
    "Submitted": {
        "type": "object",
        "required": ["status", "task", "id"],
        "additionalProperties": False,
        "properties": {
            "status": {
                "type": "string",
                "enum": ["queued", "scheduled"],
                "description": "`scheduled` when the job has a delay or a run_at ahead.",
            },
            "task": {"type": "string"},
            "id": {"type": "string", "format": "uuid"},
            "replayed": _REPLAYED,
        },
    },
    "BatchSubmitted": {
        "type": "object",
        "required": ["status", "count", "ids"],
        "additionalProperties": False,
        "properties": {
            "status": {"const": "queued"},
            "count": {"type": "integer", "minimum": 1},
            "ids": {
                "type": "array",
                "description": "One id per job, in the order of `jobs`.",
                "items": {"type": "string", "format": "uuid"},
            },
            "replayed": _REPLAYED,
        },
    },
    "Job": _JOB_SCHEMA,
    "Schedule": {
        "type": "object",
        "required": ["name", "cron", "task", "queue", "source", "next_run_at"],
        "properties": {
            "name": {"type": "string"},
            "cron": {"type": "string"},
            "task": {"type": "string"},
            "payload": {},
            "queue": {"type": "string"},
            "source": {
                "type": "string",
                "enum": ["code", "api"],
                "description": "`code`: declared beside the handlers; `api`: POST /schedules.",
            },
            "next_run_at": _DATE_TIME,
        },
    },
    "Schedules": {
        "type": "object",
        "required": ["schedules"],
        "properties": {"schedules": {"type": "array", "items": _ref("schemas", "Schedule")}},
    },
    "Queues": {
        "type": "object",
        "required": ["queues"],
        "additionalProperties": False,
        "properties": {
            "queues": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "name",
                        "depth",
                        "in_flight",
                        "scheduled",
                        "dead",
                        "oldest_age_seconds",
                        "throughput",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "depth": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Jobs ready to run now.",
                        },
                        "in_flight": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Jobs being run (leased to a worker).",
                        },
                        "scheduled": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Jobs waiting for a due time: delayed jobs and "
                            "retries in backoff.",
                        },
                        "dead": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Dead jobs (failed for good) of the queue.",
                        },
                        "oldest_age_seconds": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "description": "Seconds since the oldest queued job (ready, or "
                            "a retry waiting out its backoff) was queued; null when none is.",
                        },
                        "throughput": {
                            "type": "array",
                            "description": "The last 15 minutes (this one included), oldest "
                            "first: jobs completed and attempts failed (retried or "
                            "dead-lettered) in each minute (Redis clock).",
                            "items": {
                                "type": "object",
                                "required": ["minute", "completed", "failed"],
                                "additionalProperties": False,
                                "properties": {
                                    "minute": _DATE_TIME,
                                    "completed": _COUNT,
                                    "failed": _COUNT,
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "Workers": {
        "type": "object",
        "required": ["workers"],
        "additionalProperties": False,
        "properties": {
            "workers": {
                "type": "array",
                "description": "Live workers (last heartbeat within WORKER_LIVENESS_SECONDS), "
                "by id.",
                "items": {
                    "type": "object",
                    "required": list(WorkerInfo.__dataclass_fields__),
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "description": "host:pid:random."},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "concurrency": {"type": "integer", "minimum": 1},
                        "current_jobs": {
                            "type": "array",
                            "description": "Ids of the jobs it holds leases on now.",
                            "items": {"type": "string", "format": "uuid"},
                        },
                        "started_at": _DATE_TIME,
                        "last_heartbeat": _DATE_TIME,
                        "processed": {
                            **_COUNT,
                            "description": "Attempts it finished (completed or failed).",
                        },
                        "failed": {**_COUNT, "description": "Attempts of it that failed."},
                    },
                },
            }
        },
    },
    "JobPage": {
        "type": "object",
        "required": ["jobs", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "jobs": {"type": "array", "items": _ref("schemas", "Job")},
            "next_cursor": _CURSOR,
        },
    },
    "DeadLetterPage": {
        "type": "object",
        "required": ["jobs", "next_cursor", "total"],
        "additionalProperties": False,
        "properties": {
            "jobs": {"type": "array", "items": _ref("schemas", "Job")},
            "next_cursor": _CURSOR,
            "total": {
                "type": "integer",
                "minimum": 0,
                "description": "Dead jobs of the queue (or of every queue), whatever the task.",
            },
        },
    },
    "DeadLetterSelection": _SELECTION,
    "Retried": {
        "type": "object",
        "required": ["retried", "ids", "skipped"],
        "additionalProperties": False,
        "properties": {
            "retried": {"type": "integer", "minimum": 0},
            "ids": {
                "type": "array",
                "description": "The first 1000 ids retried.",
                "items": {"type": "string", "format": "uuid"},
            },
            "skipped": {
                "type": "integer",
                "minimum": 0,
                "description": "Ids given that were not dead jobs.",
            },
        },
    },
    "Purged": {
        "type": "object",
        "required": ["purged", "skipped"],
        "additionalProperties": False,
        "properties": {
            "purged": {"type": "integer", "minimum": 0},
            "skipped": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "redis"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "redis": {"type": "string", "description": '"ok", or why Redis did not answer.'},
            "error": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
    "WhoAmI": {
        "type": "object",
        "required": ["role"],
        "additionalProperties": False,
        "properties": {"role": {"type": "string", "enum": ["admin", "producer", "open"]}},
    },
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "string",
                "description": "A short, stable message (e.g. `invalid request`, `not found`).",
            },
            "detail": {"type": "string", "description": "What exactly was wrong, for humans."},
            "field": {
                "type": "string",
                "description": "The request field at fault (`body` for the body as a whole).",
            },
        },
    },
}

_RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "The request breaks a rule: the body is not valid UTF-8 JSON, not an object, nested "
        f"deeper than {MAX_JSON_DEPTH} levels, has an unknown field, or a field breaks its rule. "
        "`field` names the field. Nothing was written."
    ),
    "BadQuery": _error(
        "A query parameter breaks its rule (`field` names it), e.g. a cursor this API did "
        "not give out."
    ),
    "NotFound": _error(
        "No job has this id (ids are UUIDs), no schedule this name, or no such route."
    ),
    "Conflict": _error("The job has already ended (completed, failed or cancelled)."),
    "IdempotencyConflict": _error(
        "The Idempotency-Key was already used with a different request. Nothing was queued."
    ),
    "MethodNotAllowed": _error(
        "The path does not support this method; the Allow header lists those it does.",
        {"Allow": {"schema": {"type": "string"}}},
    ),
    "PayloadTooLarge": _error(f"The body is larger than {MAX_BODY_BYTES} bytes (1 MiB)."),
    "BatchTooLarge": _error(f"The body is larger than {MAX_BATCH_BODY_BYTES} bytes (16 MiB)."),
    "UnsupportedMediaType": _error(
        "Content-Type is not application/json (or a */*+json type) with UTF-8."
    ),
    "StoreUnavailable": _error(
        "Redis did not answer in time. Retry later. When Redis timed out (rather than "
        "refused the connection) a submit may still have been queued."
    ),
    "StoreFull": _error("Redis is out of memory and refused the write. Nothing was queued."),
    "InternalError": _error("An unexpected error; it was logged."),
    "Unauthorized": _error(
        "Tokens are configured and the request has no `Authorization: Bearer <token>` "
        "header, a malformed one, or an unknown token. `detail` says which.",
        {"WWW-Authenticate": {"schema": {"type": "string", "const": CHALLENGE}}},
    ),
    "Forbidden": _error("A producer token on an endpoint that needs an admin token."),
}

_COMMON = {
    "405": _ref("responses", "MethodNotAllowed"),
    "500": _ref("responses", "InternalError"),
}


def _dead_letter_action(
    operation: str, summary: str, description: str, ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "description": description,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("schemas", "DeadLetterSelection")},
                },
            },
            "responses": {
                "200": ok,
                "400": _ref("responses", "BadRequest"),
                "413": _ref("responses", "PayloadTooLarge"),
                "415": _ref("responses", "UnsupportedMediaType"),
                "503": _ref("responses", "StoreUnavailable"),
                **_COMMON,
            },
        }
    }


def _paths() -> dict[str, Any]:
    return {
        "/submit": {
            "post": {
                "operationId": "submitJob",
                "summary": "Queue a job",
                "parameters": [_IDEMPOTENCY_PARAM, _TRACEPARENT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("schemas", "SubmitRequest")},
                    },
                },
                "responses": {
                    "202": {
                        **_ok(
                            "Queued. `Location` is the job's URL.",
                            "Submitted",
                            Location={"schema": {"type": "string"}},
                        ),
                        "links": {
                            "GetJob": {
                                "operationId": "getJob",
                                "parameters": {"job_id": "$response.body#/id"},
                            }
                        },
                    },
                    "200": _ok(
                        "A repeat of an earlier request with the same Idempotency-Key: "
                        "nothing new was queued.",
                        "Submitted",
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "409": _ref("responses", "IdempotencyConflict"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "415": _ref("responses", "UnsupportedMediaType"),
                    "503": _ref("responses", "StoreUnavailable"),
                    "507": _ref("responses", "StoreFull"),
                    **_COMMON,
                },
            }
        },
        "/submit/batch": {
            "post": {
                "operationId": "submitBatch",
                "summary": "Queue many jobs at once, all or none",
                "parameters": [_IDEMPOTENCY_PARAM, _TRACEPARENT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("schemas", "BatchRequest")},
                    },
                },
                "responses": {
                    "202": _ok("All the jobs are queued.", "BatchSubmitted"),
                    "200": _ok(
                        "A repeat of an earlier request with the same Idempotency-Key: "
                        "nothing new was queued.",
                        "BatchSubmitted",
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "409": _ref("responses", "IdempotencyConflict"),
                    "413": _ref("responses", "BatchTooLarge"),
                    "415": _ref("responses", "UnsupportedMediaType"),
                    "503": _ref("responses", "StoreUnavailable"),
                    "507": _ref("responses", "StoreFull"),
                    **_COMMON,
                },
            }
        },
        "/jobs": {
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, newest first, a page at a time",
                "description": _LISTING_DESCRIPTION,
                "parameters": [
                    _query(
                        "status",
                        {"type": "string", "enum": [s.value for s in JobStatus]},
                        "Only jobs in this status (default: every status).",
                    ),
                    *_LIST_PARAMS,
                ],
                "responses": {
                    "200": _ok("A page of jobs.", "JobPage"),
                    "400": _ref("responses", "BadQuery"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/dead-letter": {
            "get": {
                "operationId": "listDeadLetter",
                "summary": "Dead jobs (failed for good), newest first, a page at a time",
                "description": _LISTING_DESCRIPTION,
                "parameters": _LIST_PARAMS,
                "responses": {
                    "200": _ok(
                        "A page of dead jobs, with their error and history.", "DeadLetterPage"
                    ),
                    "400": _ref("responses", "BadQuery"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/dead-letter/retry": _dead_letter_action(
            "retryDeadLetter",
            "Retry dead jobs",
            "Each is queued again behind the jobs already waiting, with attempts back at 0, "
            "no expiry, and `replayed`/`replayed_at` recording it. Done in chunks of 500, each "
            "atomic; jobs that fail while a filtered retry runs are not part of it.",
            _ok("What was retried.", "Retried"),
        ),
        "/dead-letter/purge": _dead_letter_action(
            "purgeDeadLetter",
            "Delete dead jobs for good",
            "Deletes the jobs and their ids from the dead letter. Done in chunks of 500.",
            _ok("What was deleted.", "Purged"),
        ),
        "/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job's state",
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "description": "The id `POST /submit` returned. Anything else is a 404.",
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _ok("The job.", "Job"),
                    "404": _ref("responses", "NotFound"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job",
                "description": (
                    "A queued or scheduled job is cancelled at once and never runs. A running "
                    "job is asked to stop: it shows `cancel_requested` until its worker "
                    "stops it (or it finishes), then ends `cancelled`."
                ),
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _ok("The job after the cancellation.", "Job"),
                    "404": _ref("responses", "NotFound"),
                    "409": _ref("responses", "Conflict"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Every queue with its counts",
                "responses": {
                    "200": _ok("The queues, by name.", "Queues"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/workers": {
            "get": {
                "operationId": "listWorkers",
                "summary": "Every live worker",
                "responses": {
                    "200": _ok("The live workers.", "Workers"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "description": (
                    "The Prometheus text exposition format (version 0.0.4), read from Redis "
                    "at each scrape: every API process answers alike."
                ),
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID")},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/schedules": {
            "get": {
                "operationId": "listSchedules",
                "summary": "Every periodic schedule",
                "responses": {
                    "200": _ok("The schedules, by name.", "Schedules"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            },
            "post": {
                "operationId": "putSchedule",
                "summary": "Create or replace a periodic schedule",
                "description": (
                    "At every tick of `cron` (UTC), exactly one job of `task` is queued, "
                    "however many workers run. Ticks missed while no worker ran are coalesced "
                    "into one job for the latest tick."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("schemas", "ScheduleRequest")},
                    },
                },
                "responses": {
                    "201": _ok("Created.", "Schedule"),
                    "200": _ok("Replaced the schedule of that name.", "Schedule"),
                    "400": _ref("responses", "BadRequest"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "415": _ref("responses", "UnsupportedMediaType"),
                    "503": _ref("responses", "StoreUnavailable"),
                    "507": _ref("responses", "StoreFull"),
                    **_COMMON,
                },
            },
        },
        "/schedules/{name}": {
            "delete": {
                "operationId": "deleteSchedule",
                "summary": "Remove a periodic schedule",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "204": {
                        "description": "Removed.",
                        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID")},
                    },
                    "404": _ref("responses", "NotFound"),
                    "503": _ref("responses", "StoreUnavailable"),
                    **_COMMON,
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the API can reach Redis",
                "responses": {
                    "200": _ok("Redis answered PING.", "Health"),
                    "503": _ok("Redis did not answer PING within about half a second.", "Health"),
                    **_COMMON,
                },
            }
        },
        "/auth/whoami": {
            "get": {
                "operationId": "whoami",
                "summary": "The role of the request's token",
                "responses": {
                    "200": _ok("`open` when the API has no tokens configured.", "WhoAmI"),
                    **_COMMON,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID")},
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_COMMON,
                },
            }
        },
    }


_SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "A producer token (JOBSYS_PRODUCER_TOKENS) may submit and make every GET; an "
        "admin token (JOBSYS_ADMIN_TOKENS) may do anything. With no token configured the "
        "API is open and the header is ignored."
    ),
}


def _secure(paths: dict[str, Any], auth_enabled: bool) -> dict[str, Any]:
    """Give each operation its security requirement and its 401/403 answers, from the
    access table of api/auth.py (the one the API enforces)."""
    # Open mode: the token is optional (the empty requirement), which is what the API does.
    required: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    if not auth_enabled:
        required.append({})
    for path, ops in paths.items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, op in ops.items():
            access = access_for(method.upper(), rule)
            if access is Access.PUBLIC:
                op["security"] = []
                continue
            op["security"] = required
            op["responses"]["401"] = _ref("responses", "Unauthorized")
            if access is Access.ADMIN:
                op["responses"]["403"] = _ref("responses", "Forbidden")
    return paths


@cache
def document(auth_enabled: bool = False) -> dict[str, Any]:
    """The whole OpenAPI document (built once per mode; treat it as read-only).

    Args:
        auth_enabled: whether the API has tokens configured (a bearer token is then
            required rather than optional).
    """
    submit = SubmitRequest.model_json_schema(ref_template=_REF)
    submit["properties"]["task"]["pattern"] = printable_pattern()
    schedule = ScheduleRequest.model_json_schema(ref_template=_REF)
    schedule["properties"]["task"]["pattern"] = printable_pattern()
    batch = BatchRequest.model_json_schema(ref_template=_REF)
    batch_job = batch.pop("$defs")["BatchJob"]
    batch_job["properties"]["task"]["pattern"] = printable_pattern()
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
        "paths": _secure(_paths(), auth_enabled),
        "components": {
            "schemas": {
                "SubmitRequest": submit,
                "BatchRequest": batch,
                "BatchJob": batch_job,
                "ScheduleRequest": schedule,
                **_SCHEMAS,
            },
            "responses": _RESPONSES,
            "securitySchemes": {"bearerAuth": _SECURITY_SCHEME},
            "headers": {
                "X-Request-ID": {
                    "description": (
                        "The request's X-Request-ID when it is a short token "
                        "(1-128 of A-Z a-z 0-9 . _ : -), else a new random one."
                    ),
                    "schema": {"type": "string"},
                }
            },
        },
    }
