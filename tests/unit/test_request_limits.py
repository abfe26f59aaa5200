"""The limits that keep one request from costing the API a lot of memory or time
(issue 12): the payload size of a job or schedule, the JSON values of a body, how
far ahead a job may be due, and what a list page leaves out unless asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask, request
from pydantic import ValidationError

from jobsys.api import validation
from jobsys.errors import InvalidJob

APP = Flask(__name__)
MIB = 1024 * 1024
PAYLOAD_RULE = f"must be at most {MIB} bytes as compact UTF-8 JSON"
VALUES_RULE = f"must hold at most {MIB} JSON values"
RUN_AT_RULE = f"must be at most {validation.MAX_DELAY_S} seconds (a year) ahead"


def post(path: str, data: bytes, parse: Any) -> tuple[str, str]:
    """("ok", "") or (field, rule) of the 400."""
    with APP.test_request_context(path, method="POST", data=data, content_type="application/json"):
        try:
            parse(request)
        except InvalidJob as e:
            return e.field, e.rule
    return "ok", ""


def string_of(size: int) -> str:
    """A JSON string payload of exactly `size` bytes as compact JSON."""
    return "x" * (size - 2)


def test_the_payload_limit_is_the_submit_body_limit() -> None:
    assert validation.MAX_PAYLOAD_BYTES == validation.MAX_BODY_BYTES == MIB


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        (string_of(MIB), True),
        (string_of(MIB + 1), False),
        # UTF-8 bytes, not characters: "é" is two.
        ("é" * ((MIB - 2) // 2), True),
        ("é" * ((MIB - 2) // 2 + 1), False),
        ([string_of(MIB // 2 - 1), string_of(MIB // 2 - 1)], False),  # 1 byte over
        ({"k": string_of(MIB - 6)}, True),  # {"k":} is 6 bytes
        ({"k": string_of(MIB - 5)}, False),
    ],
)
def test_a_batch_job_payload_is_at_most_a_mib(payload: Any, ok: bool) -> None:
    small = {"task": "t", "payload": 1}
    body = json.dumps({"jobs": [small, {"task": "t", "payload": payload}]}, ensure_ascii=False)
    verdict = post("/submit/batch", body.encode(), validation.batch_request)
    if ok:
        assert verdict == ("ok", "")
    else:
        field, rule = verdict
        assert field == "jobs.1.payload"
        assert rule.startswith(PAYLOAD_RULE), rule


def test_a_payload_is_measured_as_stored_not_as_sent() -> None:
    # Under 1 MiB as sent, over it once its numbers are written out (1e15 is
    # 1000000000000000.0): the stored job is what every read pays for.
    data = b'{"task":"t","payload":[' + b",".join([b"1e15"] * 100_000) + b"]}"
    assert len(data) < MIB
    field, rule = post("/submit", data, validation.submit_request)
    assert (field, rule[: len(PAYLOAD_RULE)]) == ("payload", PAYLOAD_RULE)


def test_a_payload_with_a_lone_surrogate_is_measured_too() -> None:
    data = json.dumps({"task": "t", "payload": ["\ud800", string_of(MIB)]}).encode()
    assert post("/submit/batch", b'{"jobs":[' + data + b"]}", validation.batch_request)[0] == (
        "jobs.0.payload"
    )
    assert post("/submit", b'{"task":"t","payload":"\\ud800"}', validation.submit_request) == (
        "ok",
        "",
    )


def test_a_schedule_payload_keeps_the_same_rule() -> None:
    schedule = {"name": "n", "cron": "* * * * *", "task": "t"}
    validation.ScheduleRequest.model_validate(schedule | {"payload": string_of(MIB)})
    with pytest.raises(ValidationError) as e:
        validation.ScheduleRequest.model_validate(schedule | {"payload": string_of(MIB + 1)})
    assert e.value.errors()[0]["loc"] == ("payload",)
    assert PAYLOAD_RULE in str(e.value)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        (b"1", 1),
        (b"[]", 2),  # an empty array or object counts one
        (b"[1,2,3]", 3),
        (b'{"a":1,"b":[1,2]}', 4),
    ],
)
def test_the_value_count_bounds_the_values(text: bytes, values: int) -> None:
    assert validation._json_values(text) >= values
    assert validation._json_values(text) <= values + 3


def test_commas_inside_strings_are_not_values() -> None:
    # Text payloads full of commas and brackets (over a million of them, the
    # cheap count's limit) are one value each, escaped quotes and all.
    text = 'a,b\\",[{' * (MIB // 16)
    data = json.dumps({"jobs": [{"task": "t", "payload": text}] * 5}).encode()
    assert data.count(b",") > validation.MAX_JSON_VALUES / 2
    # 1, the body and "jobs" ({ [), 5 jobs ({), commas between jobs (4) and members (5)
    assert validation._json_values(data) == 1 + 2 + 5 + 4 + 5
    assert post("/submit/batch", data, validation.batch_request) == ("ok", "")


def test_a_body_of_too_many_values_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed")

    values = b",".join([b"0"] * (MIB // 16))
    job = b'{"task":"t","payload":[' + values + b"]}"
    data = b'{"jobs":[' + b",".join([job] * 17) + b"]}"  # just over 1 Mi values
    assert len(data) < 3 * MIB
    monkeypatch.setattr(validation.json, "loads", no_parse)
    field, rule = post("/submit/batch", data, validation.batch_request)
    assert (field, rule[: len(VALUES_RULE)]) == ("body", VALUES_RULE)


def test_every_submit_body_is_within_the_value_limit() -> None:
    # What counts most per byte: empty arrays (3 bytes, counted twice), filling 1 MiB.
    empties = b",".join([b"[]"] * ((MIB - 24) // 3))
    data = b'{"task":"t","payload":[' + empties + b"]}"
    assert len(data) <= MIB
    assert validation._json_values(data) < validation.MAX_JSON_VALUES
    assert post("/submit", data, validation.submit_request) == ("ok", "")


def test_a_full_batch_of_small_object_payloads_passes() -> None:
    payload = {"url": "https://example.com/a.png", "width": 640, "height": 480, "tags": ["a"]}
    jobs = [
        {"task": "resize", "payload": payload | {"n": i}, "priority": 1, "max_retries": 3}
        for i in range(validation.MAX_BATCH_JOBS)
    ]
    data = json.dumps({"queue": "q", "jobs": jobs}).encode()
    assert post("/submit/batch", data, validation.batch_request) == ("ok", "")


def now_plus(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(
    ("run_at", "ok"),
    [
        # Seconds from now (made when the test runs: collection must be the same in
        # every process of a parallel run), or a fixed time.
        (validation.MAX_DELAY_S - 60, True),
        (validation.MAX_DELAY_S + 60, False),
        ("9999-12-31T23:59:59Z", False),
        ("2000-01-01T00:00:00+02:00", True),  # the past: runs at once
    ],
)
def test_run_at_is_at_most_a_year_ahead_like_delay_seconds(run_at: str | int, ok: bool) -> None:
    if isinstance(run_at, int):
        run_at = now_plus(run_at)
    submit = post(
        "/submit", json.dumps({"task": "t", "run_at": run_at}).encode(), validation.submit_request
    )
    batch = post(
        "/submit/batch",
        json.dumps({"jobs": [{"task": "t"}, {"task": "t", "run_at": run_at}]}).encode(),
        validation.batch_request,
    )
    if ok:
        assert submit == batch == ("ok", "")
    else:
        assert submit == ("run_at", RUN_AT_RULE)
        assert batch == ("jobs.1.run_at", RUN_AT_RULE)


@pytest.mark.parametrize(
    ("include", "left_out"),
    [
        (None, {"payload", "result"}),
        ("payload", {"result"}),
        ("result", {"payload"}),
        ("payload,result", set()),
        ("result,payload", set()),
    ],
)
def test_a_list_page_leaves_out_payload_and_result_unless_asked(
    include: str | None, left_out: set[str]
) -> None:
    query = {} if include is None else {"include": include}
    for model in (validation.JobQuery, validation.DeadLetterQuery):
        assert model.model_validate(query).left_out == left_out


@pytest.mark.parametrize("include", ["", "payload,", "error", "payload;result", "PAYLOAD"])
def test_include_names_only_payload_and_result(include: str) -> None:
    context = APP.test_request_context("/jobs", query_string={"include": include})
    with context, pytest.raises(InvalidJob) as e:
        validation.list_query(request, validation.JobQuery)
    rule = "must be payload, result or payload,result"
    assert (e.value.field, e.value.rule) == ("include", rule)
