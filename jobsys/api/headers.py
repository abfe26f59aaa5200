"""The request headers the API reads: X-Request-ID, traceparent, Idempotency-Key."""

from __future__ import annotations

import os
import re
from typing import Any

from jobsys.errors import InvalidJob

#: An incoming X-Request-ID is echoed only when it looks like this.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: W3C trace context: version-traceid-parentid-flags, lower-case hex.
TRACEPARENT_HEADER = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")

#: The header that makes a submit idempotent.
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


#: A header every answer carries: no MIME sniffing.
NOSNIFF = ("X-Content-Type-Options", "nosniff")


def answer_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers every answer carries (Flask's, by an app hook, and the submit
    lane's): the request's id (`request_id`) and `NOSNIFF`."""
    return [("X-Request-ID", request_id(environ.get("HTTP_X_REQUEST_ID"))), NOSNIFF]


def request_id(incoming: str | None) -> str:
    """The id of a request: its X-Request-ID header when that is a short token, else a
    new random one."""
    if incoming is not None and REQUEST_ID.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()


def traceparent(header: str | None) -> str:
    """The W3C trace context a submit's jobs belong to: the request's ``traceparent``
    header when it is valid, else a new trace (a bad header is ignored, as W3C Trace
    Context asks: the trace restarts). Only the four fields of version 00 are kept."""
    if header is not None:
        found = _TRACEPARENT.fullmatch(header.strip())
        if found is not None:
            version, trace, parent, flags, rest = found.groups()
            if (
                version != "ff"
                and not (version == "00" and rest)
                and trace != "0" * 32
                and parent != "0" * 16
            ):
                return f"{version}-{trace}-{parent}-{flags}"
    return new_traceparent()


def new_traceparent() -> str:
    """A new trace: random trace id and parent id, sampled."""
    ids = os.urandom(24).hex()
    return f"00-{ids[:32]}-{ids[32:]}-01"


def idempotency_key(key: str | None) -> str | None:
    """The key of an Idempotency-Key header (None: no header): 1 to 255 visible ASCII
    characters."""
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidJob(
            IDEMPOTENCY_HEADER, "must be 1 to 255 visible ASCII characters (no spaces)"
        )
    return key


# -- as the OpenAPI document describes them ---------------------------------------


def param(where: str, name: str, description: str | None, **schema: Any) -> dict[str, Any]:
    """An OpenAPI parameter object (required when in the path)."""
    param = {"name": name, "in": where, "required": where == "path", "schema": schema}
    return param | ({"description": description} if description is not None else {})


#: The headers of POST /submit and /submit/batch.
SUBMIT_HEADERS = (
    param(
        "header",
        IDEMPOTENCY_HEADER,
        "Makes the request safe to retry: repeated with the same key and the same body within "
        "IDEMPOTENCY_TTL_SECONDS (default one day), it queues nothing and answers 200 with the "
        "first request's ids; with the same key and another body, 409.",
        type="string",
        pattern=IDEMPOTENCY_KEY_PATTERN,
    ),
    param(
        "header",
        TRACEPARENT_HEADER,
        "W3C trace context the jobs belong to; stored with each job, shown by GET "
        "/jobs/{job_id} and in the worker's log lines of the job. A header that is not a valid "
        "traceparent is ignored; without a valid one the API starts a new trace.",
        type="string",
    ),
)

#: The X-Request-ID of every answer.
REQUEST_ID_HEADER = {
    "description": "The request's X-Request-ID when it is a short token "
    "(1-128 of A-Z a-z 0-9 . _ : -), else a new random one.",
    "schema": {"type": "string"},
}
