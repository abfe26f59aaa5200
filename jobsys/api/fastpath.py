"""The fast paths of the API's hottest requests: a plain ``POST /submit``, and the
jobs of a plain ``POST /submit/batch``.

Most submits are ``{"task": ..., "payload": ...}`` and nothing else. For those,
this WSGI middleware validates the body with the same functions as the Flask
route (`parse_json`, the task rules) and queues the job without building a
Flask request, response and context, which is most of a submit's CPU time.
It takes only requests that `Authenticator.authorize` lets through (the same
check as the app's before_request hook, see api/auth.py); a refused one goes to
the Flask app, which answers its 401 or 403.
Anything it does not handle itself (another path or method, any other field,
an Idempotency-Key, a missing or large Content-Length, a body that breaks a
rule) goes to the Flask app, which answers exactly as it would have; the body it
has read is handed on unchanged. A store error is answered here, with the
app's status and JSON body (Redis is never asked twice for one submit).

A batch is checked by `plain_batch` inside the Flask route: its jobs are most
often ``{"task", "payload"}`` too, and the pydantic model costs several
microseconds per job. Any other body goes to the model, which stays the
reference: `plain_batch` accepts only bodies that the model accepts, with the
same result, and leaves every error to it.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from jobsys.api import validation
from jobsys.api.auth import Authenticator
from jobsys.api.errors import store_error, too_many_queues
from jobsys.errors import InvalidJob, StoreUnavailable, TooManyQueues
from jobsys.models import DEFAULT_QUEUE, QUEUE_NAME_PATTERN
from jobsys.store import Store, Submission

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Bodies larger than this take the ordinary path (it streams and limits them).
MAX_FAST_BODY_BYTES = 64 * 1024
_FIELDS = frozenset({"task", "payload"})
_BATCH_FIELDS = frozenset({"queue", "jobs"})
#: The queue rule of the model; fullmatch, so that no trailing newline slips by ``$``.
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN.removeprefix("^").removesuffix("$"))


class FastSubmit:
    """Wraps the Flask app's WSGI callable; see the module docstring."""

    def __init__(self, app: WSGIApp, store: Store, auth: Authenticator) -> None:
        self.app = app
        self.store = store
        self.auth = auth

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = self._body(environ)
        if body is None:
            return self.app(environ, start_response)
        job = self._job(body, environ.get("HTTP_TRACEPARENT"))
        if job is None:
            environ["wsgi.input"] = io.BytesIO(body)  # the app reads it again
            return self.app(environ, start_response)
        try:
            job_id = self.store.submit_many([job])[0]
        except StoreUnavailable as e:
            # Answered here, as the app's handler would: never by asking Redis again.
            status, error = store_error(e, "POST", "/submit")
            return _answer(start_response, status, error, environ)
        except TooManyQueues as e:  # the default queue may be new, past MAX_QUEUES
            status, error = too_many_queues(e)
            return _answer(start_response, status, error, environ)
        queued = {"status": "queued", "task": job.task, "id": job_id}
        return _answer(start_response, 202, queued, environ, ("Location", f"/jobs/{job_id}"))

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The body of a request this path may take, or None."""
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") != "/submit"
            or environ.get("CONTENT_TYPE") != "application/json"
            or "HTTP_IDEMPOTENCY_KEY" in environ
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return None
        if not self.auth.allows(
            "POST",
            "/submit",
            environ.get("HTTP_AUTHORIZATION"),
            host=environ.get("HTTP_HOST"),
            client=environ.get("REMOTE_ADDR"),
        ):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= MAX_FAST_BODY_BYTES:
            return None
        body: bytes = environ["wsgi.input"].read(length)
        if len(body) != length:  # the client hung up: let the app deal with it
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            return None
        return body

    @staticmethod
    def _job(body: bytes, traceparent: str | None) -> Submission | None:
        """The job of a body that passes every rule, or None."""
        try:
            data = validation.parse_json(body)
        except InvalidJob:
            return None
        if type(data) is not dict or not data.keys() <= _FIELDS:
            return None
        task = data.get("task")
        if (
            type(task) is not str
            or not 0 < len(task) <= validation.MAX_TASK_CHARS
            or not task.isprintable()
        ):
            return None
        trace = validation.traceparent(traceparent)
        return Submission(task, data.get("payload"), "payload" in data, traceparent=trace)


def _answer(
    start_response: Callable[..., Any],
    status: int,
    body: dict[str, str],
    environ: dict[str, Any],
    *headers: tuple[str, str],
) -> list[bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase.upper()}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *headers,
            ("X-Request-ID", _request_id(environ)),
        ],
    )
    return [data]


def _request_id(environ: dict[str, Any]) -> str:
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if validation.REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


@dataclass(frozen=True)
class PlainBatch:
    """A ``POST /submit/batch`` body whose jobs are all ``{"task"[, "payload"]}``."""

    queue: str
    jobs: list[dict[str, Any]]

    def submissions(self, traceparent: str) -> list[Submission]:
        """What the store needs to queue the jobs (in trace `traceparent`), exactly as
        `BatchJob.submission` gives them."""
        return [
            Submission(j["task"], j.get("payload"), "payload" in j, traceparent=traceparent)
            for j in self.jobs
        ]


def plain_batch(body: Any) -> PlainBatch | None:
    """The batch of a decoded body that is plain and passes every rule of
    `validation.BatchRequest`, or None: then the model decides (and names the error)."""
    if type(body) is not dict or not body.keys() <= _BATCH_FIELDS:
        return None
    queue = body.get("queue", DEFAULT_QUEUE)
    jobs = body.get("jobs")
    if (
        type(queue) is not str
        or not _QUEUE_NAME.fullmatch(queue)
        or type(jobs) is not list
        or not 0 < len(jobs) <= validation.MAX_BATCH_JOBS
    ):
        return None
    fields, max_chars = _FIELDS, validation.MAX_TASK_CHARS
    for job in jobs:
        if type(job) is not dict or not job.keys() <= fields:
            return None
        task = job.get("task")
        if type(task) is not str or not 0 < len(task) <= max_chars or not task.isprintable():
            return None
    return PlainBatch(queue, jobs)
