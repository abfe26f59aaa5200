"""configure_logging: readable or JSON lines on stdout, extras included, set up once."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobsys import logs
from jobsys.logs import (
    _RECORD_ATTRS,
    LAYOUTS_CACHE_SIZE,
    JsonFormatter,
    OutputHandler,
    TextFormatter,
    _escape_char,
    configure_logging,
    flush_output,
    lines_written_in_background,
    logfmt_value,
)
from jobsys.settings import Settings
from jobsys.store import Claimed
from jobsys.worker import events


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("jobsys")
    handlers, root_level, our_level = root.handlers[:], root.level, ours.level
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    ours.setLevel(our_level)
    logging.captureWarnings(False)


def test_text_lines_carry_time_level_logger_message_and_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings())
    logging.getLogger("jobsys.worker").info(
        "job %s completed", "j1", extra={"job_id": "j1", "duration_ms": 12}
    )
    line = capsys.readouterr().out
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO jobsys.worker job j1 completed "
        r"job_id=j1 duration_ms=12\n",
        line,
    )


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"))
    log = logging.getLogger("jobsys.api")
    log.warning("slow", extra={"duration_ms": 900})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first.keys() == {"ts", "level", "logger", "message", "duration_ms"}
    assert (first["level"], first["logger"], first["message"]) == ("WARNING", "jobsys.api", "slow")
    assert first["duration_ms"] == 900
    assert second["message"] == "failed"
    assert "ValueError: bad" in second["exc"]


def test_configuring_twice_installs_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings())
    configure_logging(Settings())
    logging.getLogger("jobsys").warning("once")
    assert capsys.readouterr().out.count("once") == 1


def test_log_level_applies_to_jobsys_loggers_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_level="DEBUG"))
    logging.getLogger("jobsys.worker").debug("ours")
    logging.getLogger("urllib3").info("theirs")
    logging.getLogger("urllib3").warning("their warning")
    out = capsys.readouterr().out
    assert "ours" in out
    assert "theirs" not in out
    assert "their warning" in out


def test_other_formatters_still_get_process_thread_and_caller() -> None:
    # gunicorn's own log lines print %(process)d in the same process: configuring
    # jobsys's logging must not switch those record fields off.
    configure_logging(Settings())
    record = logging.getLogger("gunicorn.error").makeRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "hello", None, None
    )
    assert isinstance(record.process, int) and isinstance(record.thread, int)
    line = logging.Formatter("[%(process)d] %(threadName)s %(message)s").format(record)
    assert line.endswith("hello") and "None" not in line
    assert logging._srcfile is not None  # callers' file, line and function are found


#: One logfmt field: key=bare or key="quoted with \" \\ \n escapes".
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def fields(line: str) -> list[tuple[str, str]]:
    return FIELD.findall(line)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        (12, "12"),
        ("report job_id=1111 worker=forged", '"report job_id=1111 worker=forged"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines\r\tend", '"two\\nlines\\r\\tend"'),
        ("bell\x07 and \u2028", '"bell\\u0007 and \\u2028"'),
        ("", '""'),
        ("a=b", '"a=b"'),
        ("host:123:ab12cd", "host:123:ab12cd"),
        ("été", "été"),
        ("end\n", '"end\\n"'),
        ("café au lait", '"café au lait"'),
        (-1.5, "-1.5"),
        (float("nan"), "nan"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_logfmt_values_are_quoted_and_escaped(value: object, shown: str) -> None:
    assert logfmt_value(value) == shown


def test_a_value_cannot_forge_a_field_or_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings())
    forged = 'report job_id=1111 worker=forged" x="\n2025-01-01T00:00:00.000Z INFO fake line'
    logging.getLogger("jobsys.worker").info(
        "job %s started %s", "j1", "path\n/x", extra={"job_id": "j1", "task": forged}
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    assert [k for k, _ in fields(out)] == ["job_id", "task"]
    assert "started path\\n/x" in out


def test_traceback_lines_are_indented(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings())
    try:
        raise ValueError("boom\n2025-01-01T00:00:00.000Z INFO fake line")
    except ValueError:
        logging.getLogger("jobsys.worker").exception("failed")
    first, *rest = capsys.readouterr().out.splitlines()
    assert first.endswith("ERROR jobsys.worker failed")
    assert rest and all(line.startswith("  ") for line in rest), rest


def _plain_logfmt_value(value: object) -> str:
    """logfmt_value as its docstring says it, written the slow and obvious way."""
    text = str(value)
    if type(value) in (int, float, bool, type(None)) or (
        text and text.isprintable() and not set(text) & set(' ="\\')
    ):
        return text
    return '"' + "".join(_escape_char(c) for c in text) + '"'


def test_logfmt_value_is_the_plain_rule_for_every_character() -> None:
    chars = [chr(i) for i in range(0x3100)] + ["\u2028", "\U0001f600", "\udc80"]
    for c in chars:
        for value in (c, f"a{c}b", f"{c}{c}", f"job-1{c}"):
            assert logfmt_value(value) == _plain_logfmt_value(value), repr(value)


def _plain_fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    """A record's extras, found by walking every attribute of the record."""
    return [(k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRS]


def _records() -> Iterator[logging.LogRecord]:
    log = logging.getLogger("jobsys.worker")
    yield log.makeRecord(log.name, logging.INFO, __file__, 1, "no extras", None, None)
    for i in range(LAYOUTS_CACHE_SIZE + 3):  # more layouts than the cache keeps
        extra = {"job_id": f"j{i}", "task": 'say "hi"\n', f"field{i % 7}": i, "took": 0.5}
        record = log.makeRecord(log.name, logging.INFO, __file__, 1, "m %s", ("x",), None,
                                extra=extra)  # fmt: skip
        yield record
        if i % 5 == 0:  # another formatter ran first: message and asctime are set
            logging.Formatter("%(asctime)s %(message)s").format(record)
            yield record
        if i % 3 == 0:  # a filter added an attribute after the record was made
            record.request_id = f"r{i}"
            yield record

    yield events._record(logging.INFO, ("j1", "started", ""), {"event": "started", "job_id": "j1"})
    with_trace = {"event": "completed", "job_id": "j1", "trace_id": "a" * 32, "x": None}
    yield events._record(logging.INFO, ("j1", "completed", ""), with_trace)


def test_text_and_json_lines_carry_exactly_the_records_extras() -> None:
    """Extras are found per layout of record keys, not by a walk per record: the
    lines are those of the walk (text: ` key=value` in the record's order; JSON: the
    same keys and values)."""
    text, js = TextFormatter(), JsonFormatter()
    for record in _records():
        extras = _plain_fields(record)
        line = text.format(record)
        head = f"{record.levelname} {record.name} {record.getMessage()}"
        assert line.endswith(head + "".join(f" {k}={_plain_logfmt_value(v)}" for k, v in extras))
        out = {"ts": line.split(" ", 1)[0], "level": record.levelname, "logger": record.name,
               "message": record.getMessage(), **dict(extras)}  # fmt: skip
        assert js.format(record) == json.dumps(out, default=str)


# -- lines written by a writer thread (a running worker) ---------------------------


def _output() -> tuple[io.StringIO, logging.Logger]:
    """jobsys's handler, configured as usual, writing to a buffer; a logger of ours."""
    configure_logging(Settings())
    out = io.StringIO()
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "jobsys")
    assert isinstance(handler, OutputHandler)
    handler.setStream(out)
    return out, logging.getLogger("jobsys.worker")


def test_the_writer_thread_writes_every_line_in_order_with_its_own_time() -> None:
    out, log = _output()
    with lines_written_in_background():
        writer = next(t for t in threading.enumerate() if t.name == "log-writer")
        for i in range(500):
            log.info("line %d", i, extra={"n": i})
        time.sleep(0.01)
        written = out.getvalue().splitlines()
        assert written, "lines are written while the worker runs, not only at its end"
        for i in range(500, 1000):
            log.info("line %d", i, extra={"n": i})
    assert not writer.is_alive()
    lines = out.getvalue().splitlines()
    assert [line.split(" line ")[1] for line in lines] == [f"{i} n={i}" for i in range(1000)]
    log.info("after")  # written directly again
    assert out.getvalue().endswith(" jobsys.worker after\n")


def test_a_line_carries_the_time_it_was_logged_not_written() -> None:
    out, _ = _output()
    log = logging.getLogger("jobsys.worker")
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "jobsys")
    assert isinstance(handler, OutputHandler)
    with lines_written_in_background():
        with handler._drain_lock:  # the writer writes only once this is let go
            logged_from = time.time()
            log.info("stamped")
            logged_to = time.time()
            time.sleep(0.3)
        written_from = time.time()
    stamp = out.getvalue().split(" ", 1)[0]
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert logged_from - 0.001 <= at <= logged_to + 0.001
    assert at < written_from - 0.25


def test_a_line_is_written_within_the_interval_after_a_quiet_spell() -> None:
    out, log = _output()
    with lines_written_in_background():
        for text in ("first", "after a pause", "and another"):
            log.info(text)
            deadline = time.monotonic() + 2
            while not out.getvalue().endswith(f"{text}\n") and time.monotonic() < deadline:
                time.sleep(0.001)
            assert out.getvalue().endswith(f"{text}\n")
            time.sleep(0.15)  # the writer has nothing left: it waits out its interval


def test_the_writer_is_woken_by_a_burst_not_by_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "WRITE_INTERVAL_S", 30.0)  # only a wake makes it write
    out, log = _output()
    with lines_written_in_background():
        time.sleep(0.05)  # the writer now waits out its interval
        for i in range(logs.WAKE_AT_LINES - 1):
            log.info("line %d", i)
        time.sleep(0.1)
        assert out.getvalue() == ""  # no wake for these lines: they wait
        log.info("the last of a burst")
        deadline = time.monotonic() + 2
        while not out.getvalue().endswith("the last of a burst\n"):
            assert time.monotonic() < deadline, "a burst wakes the writer"
            time.sleep(0.001)
        assert len(out.getvalue().splitlines()) == logs.WAKE_AT_LINES


def test_a_record_that_could_change_is_formatted_when_logged() -> None:
    out, log = _output()
    items = ["a"]
    with lines_written_in_background():
        log.info("items %s", items)
        log.info("extra", extra={"items": items})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        items.append("changed later")
    text = out.getvalue()
    assert "items ['a']\n" in text
    assert "extra items=['a']\n" in text
    assert "changed later" not in text
    assert "ValueError: boom" in text


def test_job_events_are_handed_over_unformatted_and_written_whole() -> None:
    out, _ = _output()
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "jobsys")
    assert isinstance(handler, OutputHandler)
    job = Claimed("j1", 2, "noop", None, 3)
    with lines_written_in_background(), handler._drain_lock:  # the lock holds the writer off
        events.job_event("retried", job, "q", "w1", duration_s=0.25, level=logging.WARNING,
                         message="in 1.00s error=boom", error="boom", retry_in_s=1.0)  # fmt: skip
        (queued,) = handler._queue
        assert isinstance(queued, logging.LogRecord)  # formatted by the writer
    line = out.getvalue()
    assert line.endswith(
        " WARNING jobsys.worker.events job j1 retried in 1.00s error=boom event=retried"
        " job_id=j1 task=noop queue=q attempt=2 worker=w1 duration_ms=250.0 error=boom"
        " retry_in_s=1.0\n"
    )


def test_flush_output_writes_what_is_queued_at_once() -> None:
    out, log = _output()
    with lines_written_in_background():
        log.info("queued")  # the writer writes it within WRITE_INTERVAL_S
        flush_output()
        assert out.getvalue().endswith("queued\n")


def test_lines_from_many_threads_are_each_written_once_in_each_threads_order() -> None:
    out, log = _output()

    def burst(name: str) -> None:
        for i in range(300):
            log.info("%s %d", name, i)

    with lines_written_in_background():
        threads = [threading.Thread(target=burst, args=(f"t{k}",)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1200
    for k in range(4):
        mine = [int(line.rsplit(" ", 1)[1]) for line in lines if f" t{k} " in line]
        assert mine == list(range(300))


def test_a_forked_child_writes_its_own_lines_directly(tmp_path: Path) -> None:
    configure_logging(Settings())
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "jobsys")
    assert isinstance(handler, OutputHandler)
    path = tmp_path / "out.log"
    with path.open("w") as stream:
        handler.setStream(stream)
        log = logging.getLogger("jobsys.worker")
        with lines_written_in_background():
            log.info("parent before fork")  # queued (WRITE_INTERVAL_S) when it forks
            pid = os.fork()
            if pid == 0:  # the child: no writer thread here, it writes at once
                try:
                    log.info("child line")
                    stream.flush()
                finally:
                    os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
        handler.setStream(sys.stdout)
    text = path.read_text()
    assert text.count("child line") == 1
    assert text.count("parent before fork") == 1
