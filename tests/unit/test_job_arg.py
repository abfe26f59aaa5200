"""`submission.job_arg`: one job's script argument, its array as short as the job allows
(job_arg in _lib.lua fills the none-values back in; the integration tests run it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from jobsys.store.submission import Submission, job_arg

ID = "0b5f8a7e-3c2d-4e6f-9a1b-2c3d4e5f6a7b"


def parts(arg: str) -> tuple[list[object], str | None]:
    head, nl, payload = arg.partition("\n")
    return json.loads(head), payload if nl else None


def test_a_plain_job_sends_three_fields_and_its_payload() -> None:
    assert job_arg(ID, ("noop", {"a": "é\n"}), 3) == f'["{ID}","noop",3]\n{{"a":"\\u00e9\\n"}}'
    assert job_arg(ID, ("noop", None), 3) == f'["{ID}","noop",3]'
    assert job_arg(ID, Submission("noop", None), 3) == f'["{ID}","noop",3]'


def test_a_null_payload_given_is_sent() -> None:
    assert parts(job_arg(ID, Submission("t", None, has_payload=True), 3)) == ([ID, "t", 3], "null")


@pytest.mark.parametrize(
    ("sub", "fields"),
    [
        (Submission("t", max_retries=0), [ID, "t", 0]),  # the third field always stays
        (Submission("t", priority=-5), [ID, "t", 3, -5]),
        (Submission("t", delay_s=1.5), [ID, "t", 3, 0, 0, 1500]),
        (Submission("t", timeout_s=2), [ID, "t", 3, 0, 0, 0, "2.0"]),
        (Submission("t", traceparent="00-ab"), [ID, "t", 3, 0, 0, 0, "", "00-ab"]),
        (Submission("t", ttl_s=3), [ID, "t", 3, 0, 0, 0, "", "", 0, 3000]),
        (Submission("t", callback_url="https://h/x"), [ID, "t", 3, 0, 0, 0, "", "", 0, 0, "https://h/x"]),
        (Submission("t", concurrency_key="k"), [ID, "t", 3, 0, 0, 0, "", "", 0, 0, "", "k"]),
        (
            Submission("t", run_at=datetime(2030, 1, 1, tzinfo=UTC), priority=1),
            [ID, "t", 3, 1, 1893456000000],
        ),
    ],
)  # fmt: skip
def test_fields_end_at_the_last_one_the_job_sets(sub: Submission, fields: list[object]) -> None:
    assert parts(job_arg(ID, sub, 3)) == (fields, None)


def test_text_is_sent_as_it_is_without_a_raw_newline() -> None:
    arg = job_arg(ID, Submission('t\n"é', 1, traceparent="x"), 3)
    head, payload = arg.split("\n")
    assert json.loads(head)[1] == 't\n"é' and "é" in head and payload == "1"
