"""Validation of the listing and dead-letter requests (`GET /jobs`, `/dead-letter`).

Each rule failure raises `InvalidJob(field, rule)`: a 400 naming the field. The
rules are exactly those the OpenAPI document states, so that every request the
document allows is served and every other one is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request

from jobsys.api.validation import MAX_TASK_CHARS, check_media_type, parse_json, read_body
from jobsys.errors import InvalidJob
from jobsys.models import JobStatus, check_queue_name
from jobsys.store import DEFAULT_LIMIT, MAX_LIMIT

#: Most ids one dead-letter retry or purge may name.
MAX_IDS = 10_000
#: A job id as the dead-letter bodies take it (any case; answered in lower case).
JOB_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class ListQuery:
    """The query of `GET /jobs` or `GET /dead-letter`."""

    status: str | None
    task: str | None
    queue: str | None
    limit: int
    cursor: str | None


def list_query(request: Request, *, with_status: bool) -> ListQuery:
    """Validate ``status`` (when `with_status`), ``task``, ``queue``, ``limit``, ``cursor``."""
    args = request.args
    status = args.get("status") if with_status else None
    if status is not None and status not in {s.value for s in JobStatus}:
        raise InvalidJob("status", f"must be one of {', '.join(s.value for s in JobStatus)}")
    task = args.get("task")
    if task is not None:
        _check_task(task)
    queue = args.get("queue")
    if queue is not None:
        _check_queue(queue)
    limit = DEFAULT_LIMIT
    text = args.get("limit")
    if text is not None:
        if not _INTEGER.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
            raise InvalidJob("limit", f"must be a whole number 1 to {MAX_LIMIT}")
        limit = int(text)
    # The cursor's shape is checked where it is decoded (jobsys.store.listing).
    return ListQuery(status, task, queue, limit, args.get("cursor"))


@dataclass(frozen=True)
class Selection:
    """Which dead jobs a retry or purge acts on: `ids`, else the `task`/`queue`
    filter (both None: every dead job)."""

    ids: list[str] | None = None
    task: str | None = None
    queue: str | None = None


def selection(request: Request) -> Selection:
    """Validate the body of ``POST /dead-letter/retry`` and ``/dead-letter/purge``:
    ``{"ids": [...]}``, ``{"all": true}``, or ``{"task"?, "queue"?}`` (at least one)."""
    check_media_type(request.mimetype, request.mimetype_params.get("charset"))
    body = parse_json(read_body(request))
    if not isinstance(body, dict):
        raise InvalidJob("body", "must be a JSON object")
    allowed = ("ids", "all", "task", "queue")
    for name in body:
        if name not in allowed:
            raise InvalidJob(name, f"is not a known field (allowed: {', '.join(allowed)})")
    if not body:
        raise InvalidJob("body", 'must select jobs: "ids", "all": true, or "task"/"queue"')
    if "ids" in body:
        if len(body) > 1:
            raise InvalidJob("ids", 'cannot be combined with "all", "task" or "queue"')
        return Selection(ids=_ids(body["ids"]))
    if "all" in body:
        if body["all"] is not True:
            raise InvalidJob("all", "must be true (leave it out to select by task or queue)")
        if len(body) > 1:
            raise InvalidJob("all", 'cannot be combined with "task" or "queue"')
        return Selection()
    task = _filter(body, "task", _check_task)
    queue = _filter(body, "queue", _check_queue)
    return Selection(task=task, queue=queue)


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidJob("ids", "must be an array of job ids")
    if not 1 <= len(value) <= MAX_IDS:
        raise InvalidJob("ids", f"must hold 1 to {MAX_IDS} job ids")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _JOB_ID.fullmatch(item):
            raise InvalidJob(f"ids.{i}", "must be a job id (a UUID)")
    return [item.lower() for item in value]


def _check_task(task: str) -> None:
    if not 1 <= len(task) <= MAX_TASK_CHARS:
        raise InvalidJob("task", f"must be 1 to {MAX_TASK_CHARS} characters")


def _check_queue(queue: str) -> None:
    try:
        check_queue_name(queue)
    except ValueError as e:
        raise InvalidJob("queue", str(e)) from None


def _filter(body: dict[str, Any], name: str, check: Callable[[str], None]) -> str | None:
    value = body.get(name)
    if name in body:
        if not isinstance(value, str):
            raise InvalidJob(name, "must be a string")
        check(value)
    return value
