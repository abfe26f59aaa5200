"""The submit lane: the happy path of ``POST /submit`` and ``/submit/batch`` without
Flask's per-request machinery (docs/architecture.md, "The API process", says why).

It writes no rule of its own. It calls what the Flask routes call: the gate
`auth.check_request`, `validation.submit_body`/`batch_body`, the header parsers, the
Store and the answer builders of api/routes.py. Any request it does not take, or
that any check refuses, goes to Flask with its body replayed, so every refusal is
answered by Flask's handlers and a failed token is counted once. A store error is
not replayed (a timed-out submit may have queued): `errors.store_error` answers it,
as the Flask handler does. A refusal that wrote nothing (TooManyQueues) is replayed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from jobsys.api import auth, catalog, errors, headers, routes, validation
from jobsys.errors import InvalidJob, JobsysError, StoreUnavailable, TooManyQueues

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from flask import Flask

#: The paths the lane takes, with their largest body (larger ones go to Flask: 413).
LIMITS = {"/submit": validation.MAX_BODY_BYTES, "/submit/batch": validation.MAX_BATCH_BODY_BYTES}


class SubmitLane:
    """A WSGI callable that takes plain submits and hands the rest to `app.wsgi_app`."""

    def __init__(self, app: Flask, authenticator: auth.Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator
        self.state = app.extensions[routes.STATE_KEY]
        # Flask's JSON settings, in one encoder made once (its `dumps` merges its
        # options into a new encoder on every call).
        provider = cast(DefaultJSONProvider, app.json)
        self._encode = json.JSONEncoder(
            ensure_ascii=provider.ensure_ascii,
            sort_keys=provider.sort_keys,
            separators=(",", ":"),
            default=provider.default,
        ).encode

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        limit = LIMITS.get(path, -1)
        length = environ.get("CONTENT_LENGTH") or ""
        # Idempotent submits, chunked bodies and a mount point are Flask's alone.
        taken = environ.get("REQUEST_METHOD") == "POST" and length.isdigit()
        if not taken or int(length) > limit or not _plain(environ):
            return self.app.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)  # for Flask, should it get the request
        if len(body) != int(length):  # the client went away: Flask answers that
            return self.app.wsgi_app(environ, start_response)
        try:
            auth.check_request(self.authenticator, "POST", path, path, environ, count_failure=False)
            content_type = environ.get("CONTENT_TYPE")
            trace = headers.traceparent(environ.get("HTTP_TRACEPARENT"))
            if path == "/submit":
                req = validation.submit_body(content_type, body)
                jobs: list[validation.BatchJob] = [req]
                queue, queue_given = req.queue, "queue" in req.model_fields_set
                unique = req.unique_key is not None
            else:
                batch = validation.batch_body(content_type, body)
                jobs, queue, queue_given = batch.jobs, batch.queue, True
                unique = False  # only a single submit may carry a unique_key
        except (JobsysError, HTTPException):
            return self.app.wsgi_app(environ, start_response)
        if unique or _with_callbacks(jobs):
            return self.app.wsgi_app(environ, start_response)
        extra: list[tuple[str, str]] = []
        try:
            # The task catalog (api/catalog.py) reads Redis: an outage is answered here.
            subs, queue = catalog.for_app(self.app).prepare(
                jobs, [j.submission(trace) for j in jobs], queue, queue_given
            )
            done = self.state.store.submit_jobs(subs, queue=queue)
        except (TooManyQueues, InvalidJob):
            # Refused before anything was written (too many queues; a depends_on of
            # no job): Flask answers it (the same refusal).
            return self.app.wsgi_app(environ, start_response)
        except StoreUnavailable as e:
            errors.log_store_error(e, "POST", path)
            status, error = errors.store_error(e)
            data = f"{self._encode(error)}\n".encode()
        else:
            status = 202
            if path == "/submit":
                data = routes.submitted(req, done.statuses[0], done.ids[0]).to_api_json()
                extra.append(("Location", routes.job_location("", done.ids[0])))
            else:
                data = routes.batch_submitted(done.ids, done.statuses).to_api_json()
        start_response(
            f"{status} {HTTP_STATUS_CODES[status].upper()}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                *extra,
                *headers.answer_headers(environ),
            ],
        )
        return [data]


def _with_callbacks(jobs: list[validation.BatchJob]) -> bool:
    """True when a job has a `callback_url`: only the Flask route checks its address
    (webhooks: it is resolved, routes._submit). The other submit only Flask answers,
    one with a `unique_key` (flow control), is a single submit: `__call__` sees it."""
    return any(j.callback_url for j in jobs)


def _plain(environ: WSGIEnvironment) -> bool:
    return not (
        "HTTP_IDEMPOTENCY_KEY" in environ
        or "HTTP_TRANSFER_ENCODING" in environ
        or environ.get("SCRIPT_NAME")
    )
