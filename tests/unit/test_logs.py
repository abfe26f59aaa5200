"""configure_logging: readable or JSON lines on stdout, extras included, set up once."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest

from jobsys.logs import configure_logging, logfmt_value
from jobsys.settings import Settings


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
