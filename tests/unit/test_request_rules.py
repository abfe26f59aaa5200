"""Every rule of the request models (jobsys.api.validation), case by case: what each
request is answered with, as (field, rule) of the 400 or what the model makes of it.

This table took over the cases of the differential test that kept the submit fast
path equal to the models (its near misses of the plain bodies are all here), and of
the hand-written listing and dead-letter checks. Every verdict and field is what the
API answered before the models replaced those checks; where the wording of a rule
changed (one rule, one text), the old text is noted beside the case.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, request

from jobsys.api import validation
from jobsys.errors import InvalidJob

APP = Flask(__name__)
MAX = validation.MAX_BATCH_JOBS
LONG = "t" * validation.MAX_TASK_CHARS
UUID = "00000000-0000-4000-8000-00000000000A"
QUEUE_RULE = "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
PRINTABLE = "must contain only printable characters"
SURROGATE = "must be valid Unicode (no lone surrogates)"
BATCH_FIELDS = (
    "task, payload, priority, delay_seconds, run_at, max_retries, timeout_seconds, "
    "callback_url, "  # webhooks (docs/events.md)
    "expires_at, ttl_seconds, concurrency_key, "  # flow control (docs/flow-control.md)
    "depends_on, on_parent_failure"  # workflows (docs/workflows.md)
)
SELECTION_FIELDS = "is not a known field (allowed: ids, all, task, queue)"


def answer(path: str, body: Any, parse: Any) -> Any:
    """("ok", what `parse` makes of the model) or (field, rule) of the 400."""
    data = json.dumps(body)
    with APP.test_request_context(path, method="POST", data=data, content_type="application/json"):
        try:
            return "ok", parse()
        except InvalidJob as e:
            return e.field, e.rule


def batch(body: Any) -> Any:
    def parse() -> Any:
        req = validation.batch_request(request)
        return req.queue, len(req.jobs)

    return answer("/submit/batch", body, parse)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"jobs": [{"task": "a"}]}, ("ok", ("default", 1))),
        ({"jobs": [{"task": "a", "payload": None}]}, ("ok", ("default", 1))),
        (
            {"jobs": [{"task": "a", "payload": {"x": [1, 2.5, "é", None, True]}}, {"task": "b"}]},
            ("ok", ("default", 2)),
        ),
        ({"queue": "q-1.a:b_C", "jobs": [{"task": "a", "payload": 1}]}, ("ok", ("q-1.a:b_C", 1))),
        ({"jobs": [{"task": LONG}]}, ("ok", ("default", 1))),
        ({"jobs": [{"task": LONG + "t"}]}, ("jobs.0.task", "must be at most 200 characters")),
        ({"jobs": [{"task": "with space and ünïcode ✓"}]}, ("ok", ("default", 1))),
        ({"jobs": [{"task": "a"}] * MAX}, ("ok", ("default", MAX))),
        ({"jobs": [{"task": "a"}] * (MAX + 1)}, ("jobs", "must hold at most 10000 jobs")),
        ({"jobs": []}, ("jobs", "must hold at least 1 job")),
        ({}, ("jobs", "is required")),
        ({"queue": "default"}, ("jobs", "is required")),
        ({"jobs": None}, ("jobs", "must be an array, not null")),
        ({"jobs": {"task": "a"}}, ("jobs", "must be an array, not an object")),
        ({"jobs": ["a"]}, ("jobs.0", "must be a JSON object, not a string")),
        ({"jobs": [None]}, ("jobs.0", "must be a JSON object, not null")),
        ({"jobs": [[]]}, ("jobs.0", "must be a JSON object, not an array")),
        ({"jobs": [{}]}, ("jobs.0.task", "is required")),
        ({"jobs": [{"payload": 1}]}, ("jobs.0.task", "is required")),
        ({"jobs": [{"task": ""}]}, ("jobs.0.task", "must not be empty")),
        ({"jobs": [{"task": 5}]}, ("jobs.0.task", "must be a string, not a number")),
        ({"jobs": [{"task": None}]}, ("jobs.0.task", "must be a string, not null")),
        ({"jobs": [{"task": ["a"]}]}, ("jobs.0.task", "must be a string, not an array")),
        ({"jobs": [{"task": "a\x00b"}]}, ("jobs.0.task", PRINTABLE)),
        ({"jobs": [{"task": "a\nb"}]}, ("jobs.0.task", PRINTABLE)),
        ({"jobs": [{"task": "a\u200bb"}]}, ("jobs.0.task", PRINTABLE)),  # a format character
        ({"jobs": [{"task": "\ud800"}]}, ("jobs.0.task", SURROGATE)),
        ({"jobs": [{"task": "ok"}, {"task": ""}]}, ("jobs.1.task", "must not be empty")),
        (
            {"jobs": [{"task": "a", "delay": 1}]},
            ("jobs.0.delay", f"is not a known field (allowed: {BATCH_FIELDS})"),
        ),
        ({"jobs": [{"task": "a", "priority": 5}]}, ("ok", ("default", 1))),
        ({"jobs": [{"task": "a", "priority": 101}]}, ("jobs.0.priority", "must be at most 100")),
        (
            {"jobs": [{"task": "a", "max_retries": 0, "timeout_seconds": 1.5}]},
            ("ok", ("default", 1)),
        ),
        ({"jobs": [{"task": "a", "delay_seconds": 10}]}, ("ok", ("default", 1))),
        ({"jobs": [{"task": "a", "run_at": "2026-12-01T08:00:00Z"}]}, ("ok", ("default", 1))),
        (
            {"jobs": [{"task": "a", "queue": "q"}]},
            ("jobs.0.queue", f"is not a known field (allowed: {BATCH_FIELDS})"),
        ),
        (
            {"jobs": [{"task": "a"}], "job": []},
            ("job", "is not a known field (allowed: queue, jobs)"),
        ),
        ({"jobs": [{"task": "a"}], "queue": ""}, ("queue", QUEUE_RULE)),
        ({"jobs": [{"task": "a"}], "queue": "bad name"}, ("queue", QUEUE_RULE)),
        ({"jobs": [{"task": "a"}], "queue": "q\n"}, ("queue", QUEUE_RULE)),
        ({"jobs": [{"task": "a"}], "queue": "q" * 64}, ("ok", ("q" * 64, 1))),
        ({"jobs": [{"task": "a"}], "queue": "q" * 65}, ("queue", QUEUE_RULE)),
        ({"jobs": [{"task": "a"}], "queue": None}, ("queue", "must be a string, not null")),
        ({"jobs": [{"task": "a"}], "queue": 1}, ("queue", "must be a string, not a number")),
        ([{"task": "a"}], ("body", "must be a JSON object, not an array")),
        ("jobs", ("body", "must be a JSON object, not a string")),
        (None, ("body", "must be a JSON object, not null")),
        (3, ("body", "must be a JSON object, not a number")),
    ],
    ids=lambda v: json.dumps(v)[:60] if not isinstance(v, tuple) else "",
)
def test_batch_rules(body: Any, expected: Any) -> None:
    assert batch(body) == expected


def submit(body: Any) -> Any:
    def parse() -> Any:
        return validation.submit_request(request).model_dump(mode="json", exclude_unset=True)

    return answer("/submit", body, parse)


SUBMIT_FIELDS = BATCH_FIELDS + ", queue, unique_key, unique_for_seconds"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"task": "a"}, ("ok", {"task": "a"})),
        ({"task": "a", "payload": None}, ("ok", {"task": "a", "payload": None})),
        ({"task": ""}, ("task", "must not be empty")),
        ({"task": LONG}, ("ok", {"task": LONG})),
        ({"task": LONG + "t"}, ("task", "must be at most 200 characters")),
        # each field's own limit (every long string was once said to be "at most 200")
        (
            {"task": "a", "callback_url": "https://example.com/" + "x" * 2029},
            ("callback_url", "must be at most 2048 characters"),
        ),
        ({"task": 5}, ("task", "must be a string, not a number")),
        ({"task": "a\nb"}, ("task", PRINTABLE)),
        ({"task": "a\u200bb"}, ("task", PRINTABLE)),
        ({"task": "\ud800"}, ("task", SURROGATE)),
        ({"payload": 1}, ("task", "is required")),
        ({"task": "a", "queue": "bad name"}, ("queue", QUEUE_RULE)),
        ({"task": "a", "queue": "q\n"}, ("queue", QUEUE_RULE)),
        ({"task": "a", "priority": 101}, ("priority", "must be at most 100")),
        ({"task": "a", "priority": -101}, ("priority", "must be at least -100")),
        ({"task": "a", "priority": 1.5}, ("priority", "must be a whole number, not a number")),
        ({"task": "a", "priority": 2.0}, ("ok", {"task": "a", "priority": 2})),
        ({"task": "a", "priority": True}, ("priority", "must be a whole number, not a boolean")),
        ({"task": "a", "delay_seconds": -1}, ("delay_seconds", "must be at least 0.0")),
        (
            {"task": "a", "delay_seconds": 366 * 24 * 3600 + 1},
            ("delay_seconds", "must be at most 31622400.0"),
        ),
        ({"task": "a", "timeout_seconds": 0}, ("timeout_seconds", "must be more than 0.0")),
        ({"task": "a", "timeout_seconds": 86401}, ("timeout_seconds", "must be at most 86400.0")),
        ({"task": "a", "max_retries": 101}, ("max_retries", "must be at most 100")),
        ({"task": "a", "max_retries": -1}, ("max_retries", "must be at least 0")),
        (
            {"task": "a", "run_at": "2026-12-01T08:00:00"},
            ("run_at", "must carry a UTC offset or Z (e.g. 2026-12-01T08:00:00Z)"),
        ),
        (
            {"task": "a", "run_at": 5},
            ("run_at", "must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z"),
        ),
        (
            {"task": "a", "run_at": "nope"},
            ("run_at", "must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z"),
        ),
        ({"task": "a", "extra": 1}, ("extra", f"is not a known field (allowed: {SUBMIT_FIELDS})")),
        ([], ("body", "must be a JSON object, not an array")),
        ("x", ("body", "must be a JSON object, not a string")),
        (None, ("body", "must be a JSON object, not null")),
    ],
    ids=lambda v: json.dumps(v)[:60] if not isinstance(v, tuple) else "",
)
def test_submit_rules(body: Any, expected: Any) -> None:
    assert submit(body) == expected


LIMIT_RULE = "must be a whole number 1 to 500"
STATUS_RULE = (
    "must be one of queued, scheduled, processing, completed, failed, cancelled, expired, waiting"
)
EVERYTHING = {"status": None, "task": None, "queue": None, "limit": 50, "cursor": None}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ("ok", EVERYTHING)),
        ("status=done", ("status", STATUS_RULE)),
        ("status=queued", ("ok", EVERYTHING | {"status": "queued"})),
        ("limit=0", ("limit", LIMIT_RULE)),
        ("limit=501", ("limit", LIMIT_RULE)),
        ("limit=500", ("ok", EVERYTHING | {"limit": 500})),
        ("limit=ten", ("limit", LIMIT_RULE)),
        ("limit=", ("limit", LIMIT_RULE)),
        ("limit=%2B5", ("limit", LIMIT_RULE)),
        ("limit=5.0", ("limit", LIMIT_RULE)),
        ("limit=-0", ("limit", LIMIT_RULE)),
        ("limit=%205", ("limit", LIMIT_RULE)),
        ("limit=007", ("ok", EVERYTHING | {"limit": 7})),
        ("limit=3&limit=x", ("ok", EVERYTHING | {"limit": 3})),  # the first one counts
        ("cursor=abc", ("ok", EVERYTHING | {"cursor": "abc"})),  # checked by the store
        ("queue=a%20b", ("queue", QUEUE_RULE)),
        ("queue=ok", ("ok", EVERYTHING | {"queue": "ok"})),
        ("task=", ("task", "must not be empty")),  # was "must be 1 to 200 characters"
        ("task=" + LONG + "t", ("task", "must be at most 200 characters")),  # was the same
        ("task=" + LONG, ("ok", EVERYTHING | {"task": LONG})),
        ("task=a%0Ab", ("ok", EVERYTHING | {"task": "a\nb"})),  # a filter only has to match
        ("foo=bar", ("ok", EVERYTHING)),
    ],
)
def test_listing_rules(query: str, expected: Any) -> None:
    for model in (validation.JobQuery, validation.DeadLetterQuery):
        with APP.test_request_context("/jobs?" + query):
            try:
                q = validation.list_query(request, model)
                got: Any = "ok", {name: getattr(q, name, None) for name in EVERYTHING}
            except InvalidJob as e:
                got = e.field, e.rule
        if model is validation.DeadLetterQuery and query.startswith("status="):
            assert got == ("ok", EVERYTHING)  # no status filter: ignored like any other
        else:
            assert got == expected, model


def selection(body: Any) -> Any:
    def parse() -> Any:
        sel = validation.selection(request)
        return {name: getattr(sel, name, None) for name in ("ids", "all", "task", "queue")}

    return answer("/dead-letter/retry", body, parse)


NOTHING = {"ids": None, "all": None, "task": None, "queue": None}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ("body", 'must select jobs: "ids", "all": true, or "task"/"queue"')),
        ([], ("body", "must be a JSON object, not an array")),  # was "must be a JSON object"
        ("x", ("body", "must be a JSON object, not a string")),
        (None, ("body", "must be a JSON object, not null")),
        ({"ids": []}, ("ids", "must hold at least 1 job")),  # was "must hold 1 to 10000 job ids"
        ({"ids": [UUID] * 10_001}, ("ids", "must hold at most 10000 jobs")),
        ({"ids": "x"}, ("ids", "must be an array, not a string")),  # "... of job ids"
        ({"ids": ["nope"]}, ("ids.0", "must be a job id (a UUID)")),
        ({"ids": [5]}, ("ids.0", "must be a string, not a number")),  # "must be a job id"
        ({"ids": [UUID]}, ("ok", NOTHING | {"ids": [UUID.lower()]})),
        ({"ids": [UUID], "all": True}, ("ids", 'cannot be combined with "all", "task" or "queue"')),
        ({"ids": [UUID], "every": 1}, ("every", SELECTION_FIELDS)),
        ({"all": True}, ("ok", NOTHING | {"all": True})),
        ({"all": False}, ("all", "must be true (leave it out to select by task or queue)")),
        ({"all": 1}, ("all", "must be true (leave it out to select by task or queue)")),
        ({"all": True, "task": "t"}, ("all", 'cannot be combined with "task" or "queue"')),
        (
            {"all": False, "task": "t"},
            ("all", "must be true (leave it out to select by task or queue)"),
        ),
        ({"all": True, "every": 1}, ("every", SELECTION_FIELDS)),
        ({"task": ""}, ("task", "must not be empty")),  # was "must be 1 to 200 characters"
        ({"task": 3}, ("task", "must be a string, not a number")),  # was "must be a string"
        ({"task": None}, ("task", "must be a string")),
        ({"queue": "a b"}, ("queue", QUEUE_RULE)),
        ({"every": True}, ("every", SELECTION_FIELDS)),
        ({"task": "t"}, ("ok", NOTHING | {"task": "t"})),
        ({"queue": "q"}, ("ok", NOTHING | {"queue": "q"})),
        ({"task": "t", "queue": "q"}, ("ok", NOTHING | {"task": "t", "queue": "q"})),
    ],
    ids=lambda v: json.dumps(v)[:60] if not isinstance(v, tuple) else "",
)
def test_selection_rules(body: Any, expected: Any) -> None:
    assert selection(body) == expected
