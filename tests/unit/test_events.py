"""A job event's log record: its fields, and where it says it was made."""

from __future__ import annotations

import logging

import pytest

from jobsys.store import Claimed
from jobsys.worker import events
from jobsys.worker.events import job_event


def test_a_job_event_is_one_record_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    job = Claimed("j1", 2, "noop", None, 3, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    with caplog.at_level(logging.INFO, logger="jobsys.worker.events"):
        job_event("dead_lettered", job, "q", "w1", duration_s=0.5, message="error=x", error="x")
    (record,) = caplog.records
    assert record.getMessage() == "job j1 dead-lettered error=x"
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k) for k in ("event", "job_id", "task", "queue", "attempt")}
    assert fields == {"event": "dead_lettered", "job_id": "j1", "task": "noop", "queue": "q",
                      "attempt": 2}  # fmt: skip
    assert (record.worker, record.duration_ms, record.error) == ("w1", 500.0, "x")
    assert record.trace_id == "a" * 32
    # Made without a stack walk, but naming the same place a stack walk would.
    assert record.pathname == events.__file__
    assert record.funcName == "job_event"
    assert record.module == "events"
    assert record.lineno > 0


def test_a_disabled_level_makes_no_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobsys.worker.events"):
        job_event("started", Claimed("j1", 1, "noop", None, 3), "q", "w1")
    assert caplog.records == []
