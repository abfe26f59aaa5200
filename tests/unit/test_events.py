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


def test_a_record_from_the_prototype_is_the_standard_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fast path (copy of a first record of this thread) makes what makeRecord makes."""
    fields = {"event": "started", "job_id": "j2"}
    args = ("j2", "started", "")
    fast = events._record(logging.INFO, args, dict(fields))
    fast = events._record(logging.INFO, args, dict(fields))  # the second: from the copy
    standard = events.logger.makeRecord(
        events.logger.name, logging.INFO, events.__file__, events._LINE, events._MSG, args,
        None, "job_event", dict(fields),
    )  # fmt: skip
    timed = {"created", "msecs", "relativeCreated"}
    assert {k: v for k, v in vars(fast).items() if k not in timed} == {
        k: v for k, v in vars(standard).items() if k not in timed
    }
    assert abs(fast.created - standard.created) < 1.0
    assert fast.getMessage() == "job j2 started"


def test_a_custom_record_factory_makes_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)  # type: ignore[arg-type]
        made.append(record)
        return record

    monkeypatch.setattr(logging, "_logRecordFactory", factory)
    record = events._record(logging.INFO, ("j3", "started", ""), {"event": "started"})
    assert made == [record]


def test_a_forked_child_makes_records_with_its_own_pid() -> None:
    import os  # noqa: PLC0415

    events._record(logging.INFO, ("j4", "started", ""), {})  # a prototype in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        record = events._record(logging.INFO, ("j4", "started", ""), {})
        os.write(write, str(record.process).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 32).decode() == str(pid)
    os.close(read)
