"""Error handlers: every error leaves the API as JSON ``{"error", "detail"}``.

Each `jobsys.errors` class maps to one status. The Store has already turned
redis-py's exceptions into these classes, so nothing here knows about Redis.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    RequestEntityTooLarge,
)

from jobsys.api.auth import CHALLENGE
from jobsys.api.schemas import Error
from jobsys.api.validation import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES, MAX_JSON_DEPTH
from jobsys.errors import (
    Forbidden,
    IdempotencyConflict,
    InvalidJob,
    JobAlreadyFinished,
    JobNotFound,
    JobStateConflict,
    JobsysError,
    StoreFull,
    StoreUnavailable,
    TooManyQueues,
    Unauthorized,
)

logger = logging.getLogger(__name__)

#: The detail of a 503 (and 507): the reason goes to the API's log only.
STORE_UNAVAILABLE = "Redis is unavailable; try again later (the API's log has the reason)"
STORE_FULL = "Redis is out of memory: nothing was stored (the API's log has the reason)"

#: The error answers as the OpenAPI document names and describes them (each with the
#: Error schema).
ERRORS = {
    "BadRequest": "The request breaks a rule: the body is not valid UTF-8 JSON, not an object, "
    f"nested deeper than {MAX_JSON_DEPTH} levels, has an unknown field, or a field breaks its "
    "rule. `field` names the field. Nothing was written. Also when the Host header names a "
    "host this API does not answer (`field` is Host; see HostNotAllowed).",
    "BadQuery": "A query parameter breaks its rule (`field` names it), e.g. a cursor this API "
    "did not give out. Also when the Host header names a host this API does not answer "
    "(`field` is Host; see HostNotAllowed).",
    "NotFound": "No job has this id (ids are UUIDs), no schedule this name, or no such route.",
    "Conflict": "The job has already ended (completed, failed or cancelled).",
    "StateConflict": "The job is not in a status this action applies to: promote needs a "
    "scheduled job or a retry waiting out its backoff, retry a failed job, a priority change "
    "a job that has not started (docs/flow-control.md). `detail` says its status.",
    "IdempotencyConflict": "The Idempotency-Key was already used with a different request "
    "(`field`: Idempotency-Key), or the queue does not exist and MAX_QUEUES queues already do "
    "(`field`: queue). Nothing was queued.",
    "MethodNotAllowed": "The path does not support this method; the Allow header lists those "
    "it does.",
    "PayloadTooLarge": f"The body is larger than {MAX_BODY_BYTES} bytes (1 MiB).",
    "BatchTooLarge": f"The body is larger than {MAX_BATCH_BODY_BYTES} bytes (16 MiB).",
    "UnsupportedMediaType": "Content-Type is not application/json (or a */*+json type) with "
    "UTF-8. Every request but GET, HEAD and OPTIONS must say it, even without a body.",
    "HostNotAllowed": "The Host header names a host this API does not answer (an API without "
    "tokens answers only its own names, or those of JOBSYS_ALLOWED_HOSTS). `field` is Host.",
    "TooManyAttempts": "This client address sent too many invalid tokens lately; Retry-After "
    "says in how many seconds it may try again. `field` is Authorization.",
    "StoreUnavailable": "Redis did not answer in time. Retry later. When Redis timed out "
    "(rather than refused the connection) a submit may still have been queued.",
    "StoreFull": "Redis is out of memory and refused the write. Nothing was queued.",
    "InternalError": "An unexpected error; it was logged.",
    "Unauthorized": "Tokens are configured and the request has no `Authorization: Bearer "
    "<token>` header, a malformed one, or an unknown token. `detail` says which.",
    "Forbidden": "A producer token on an endpoint that needs an admin token.",
}
ERROR_HEADERS = {
    "MethodNotAllowed": {"Allow": {"schema": {"type": "string"}}},
    "Unauthorized": {"WWW-Authenticate": {"schema": {"type": "string", "const": CHALLENGE}}},
    "TooManyAttempts": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}

#: An oversized body up to this size is read to its end before the 413 goes out.
DRAIN_LIMIT_BYTES = 24 * 1024 * 1024


def error_response(status: int, error: str, detail: str, field: str | None = None) -> Response:
    """A JSON error answer; `field` names the request field at fault, if any."""
    response = jsonify(Error(error=error, detail=detail, field=field).to_api())
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Install the handlers on `app`."""
    app.register_error_handler(InvalidJob, _invalid_job)
    app.register_error_handler(JobNotFound, _job_not_found)
    app.register_error_handler(JobAlreadyFinished, _job_finished)
    app.register_error_handler(IdempotencyConflict, _idempotency_conflict)
    app.register_error_handler(JobStateConflict, _job_finished)  # flow control: also a 409
    app.register_error_handler(TooManyQueues, _too_many_queues)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(Unauthorized, _unauthorized)
    app.register_error_handler(Forbidden, _forbidden)
    app.register_error_handler(JobsysError, _jobsys_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)


def _invalid_job(e: InvalidJob) -> Response:
    return error_response(400, "invalid request", str(e), field=e.field)


def _job_not_found(e: JobNotFound) -> Response:
    return error_response(404, "not found", str(e))


def _job_finished(e: JobAlreadyFinished | JobStateConflict) -> Response:
    return error_response(409, "conflict", str(e))


def _idempotency_conflict(e: IdempotencyConflict) -> Response:
    return error_response(409, "conflict", str(e), field="Idempotency-Key")


def _too_many_queues(e: TooManyQueues) -> Response:
    # The queues exist, not this one, and no more may be made (MAX_QUEUES).
    return error_response(409, "too many queues", str(e), field=e.field)


def _unauthorized(e: Unauthorized) -> Response:
    response = error_response(401, "unauthorized", str(e), field="Authorization")
    response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def _forbidden(e: Forbidden) -> Response:
    return error_response(403, "forbidden", str(e), field="Authorization")


def _store_unavailable(e: StoreUnavailable) -> Response:
    log_store_error(e, request.method, request.path)
    status, body = store_error(e)
    response = jsonify(body)
    response.status_code = status
    return response


def store_error(e: StoreUnavailable) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the answer to `e`: 507 when Redis is full, else 503.

    The Flask handler and the submit lane (api/lane.py) both answer with this."""
    if isinstance(e, StoreFull):
        return 507, Error(error="store full", detail=STORE_FULL, field=None).to_api()
    return 503, Error(error="store unavailable", detail=STORE_UNAVAILABLE, field=None).to_api()


def log_store_error(e: StoreUnavailable, method: str, path: str) -> None:
    """Log why the store failed a request: the reason (Redis's address, its error) goes
    to the log only, never to the caller."""
    if isinstance(e, StoreFull):
        logger.error("store full on %s %s: %s", method, path, e)
    else:
        logger.warning("store unavailable on %s %s: %s", method, path, e)


def _jobsys_error(e: JobsysError) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.path, exc_info=e)
    return error_response(500, "internal error", "an unexpected error occurred; it was logged")


def _internal_error(e: InternalServerError) -> Response:
    # Flask has already logged the original exception with its traceback.
    return error_response(500, "internal error", "an unexpected error occurred; it was logged")


def _too_large(e: RequestEntityTooLarge) -> Response:
    _drain_body()
    limit = request.max_content_length or MAX_BODY_BYTES
    detail = f"the body must be at most {limit} bytes ({limit // (1024 * 1024)} MiB)"
    return error_response(413, "request entity too large", detail)


def _drain_body() -> None:
    """Read and drop the rest of an oversized body (up to `DRAIN_LIMIT_BYTES`).

    The client is usually still sending it. Were the server to answer and close
    with unread bytes pending, the kernel would reset the connection and the
    client would often see "connection reset" instead of the 413. Bodies beyond
    the limit are not worth reading: the connection is closed on them.
    """
    length = request.content_length
    if length is not None and length > DRAIN_LIMIT_BYTES:
        return
    stream = request.environ["wsgi.input"]
    remaining = DRAIN_LIMIT_BYTES
    while remaining > 0:
        chunk = stream.read(min(64 * 1024, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _http_error(e: HTTPException) -> Response:
    """werkzeug's own errors (404, 405, 413, 415, ...) as JSON, keeping their headers (Allow)."""
    detail = e.description or e.name
    if isinstance(e, MethodNotAllowed) and e.valid_methods:
        allowed = ", ".join(m for m in e.valid_methods if m not in {"HEAD", "OPTIONS"})
        detail = f"{request.method} is not allowed here; use {allowed}"
    response = error_response(e.code or 500, e.name.lower(), detail)
    for name, value in e.get_headers():
        if name.lower() != "content-type":
            response.headers.add(name, value)
    return response
