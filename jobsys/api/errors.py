"""Error handlers: every error leaves the API as JSON ``{"error", "detail"}``.

Each `jobsys.errors` class maps to one status. The Store has already turned
redis-py's exceptions into these classes, so nothing here knows about Redis.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    RequestEntityTooLarge,
)

from jobsys.api.auth import CHALLENGE
from jobsys.api.validation import MAX_BODY_BYTES
from jobsys.errors import (
    Forbidden,
    IdempotencyConflict,
    InvalidJob,
    JobAlreadyFinished,
    JobNotFound,
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
#: An oversized body up to this size is read to its end before the 413 goes out.
DRAIN_LIMIT_BYTES = 24 * 1024 * 1024


def error_response(status: int, error: str, detail: str, field: str | None = None) -> Response:
    """A JSON error answer; `field` names the request field at fault, if any."""
    body = {"error": error, "detail": detail}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Install the handlers on `app`."""
    app.register_error_handler(InvalidJob, _invalid_job)
    app.register_error_handler(JobNotFound, _job_not_found)
    app.register_error_handler(JobAlreadyFinished, _job_finished)
    app.register_error_handler(IdempotencyConflict, _idempotency_conflict)
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


def _job_finished(e: JobAlreadyFinished) -> Response:
    return error_response(409, "conflict", str(e))


def _idempotency_conflict(e: IdempotencyConflict) -> Response:
    return error_response(409, "conflict", str(e), field="Idempotency-Key")


def too_many_queues(e: TooManyQueues) -> tuple[int, dict[str, str]]:
    """409 naming the field ``queue``: the queues exist, not this one, and no more may
    be made (MAX_QUEUES). Shared by the Flask handler and the submit fast path."""
    return 409, {"error": "too many queues", "detail": str(e), "field": e.field}


def _too_many_queues(e: TooManyQueues) -> Response:
    status, body = too_many_queues(e)
    return error_response(status, body["error"], body["detail"], field=body["field"])


def _unauthorized(e: Unauthorized) -> Response:
    response = error_response(401, "unauthorized", str(e), field="Authorization")
    response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def _forbidden(e: Forbidden) -> Response:
    return error_response(403, "forbidden", str(e), field="Authorization")


def store_error(e: StoreUnavailable, method: str, path: str) -> tuple[int, dict[str, str]]:
    """Log a store failure; the status and JSON body that answer it (507 when Redis
    is full, else 503). Shared by the Flask handlers and the submit fast path."""
    # The reason (Redis's address, its error) is logged, not shown to the caller.
    if isinstance(e, StoreFull):
        logger.error("store full on %s %s: %s", method, path, e)
        return 507, {"error": "store full", "detail": STORE_FULL}
    logger.warning("store unavailable on %s %s: %s", method, path, e)
    return 503, {"error": "store unavailable", "detail": STORE_UNAVAILABLE}


def _store_unavailable(e: StoreUnavailable) -> Response:
    status, body = store_error(e, request.method, request.path)
    return error_response(status, body["error"], body["detail"])


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
