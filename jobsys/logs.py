"""Logging setup shared by every `jobsys` command.

One line per record on stdout. ``LOG_FORMAT=text`` (the default) gives readable
lines; ``LOG_FORMAT=json`` gives one JSON object per line for log shippers::

    2025-01-31T12:00:00.123Z INFO jobsys.worker.worker job 3f2a… completed job_id=3f2a…
    {"ts": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "jobsys.worker.worker", ...}

Fields passed with ``extra={...}`` (``job_id``, ``task``, ``attempt``, ``worker``,
``duration_ms`` …) are appended as ``key=value`` in text and as keys in JSON.
Text follows logfmt: a value with a space, ``=``, ``"``, ``\\`` or a character that
is not printable is double-quoted, with ``\\"``, ``\\\\``, ``\\n`` ... escaped inside,
and the message has its control characters escaped. So no value (a task name, an
error text, a request path) can add a field or a line of its own:
``task="report job_id=1111"`` stays one field, and the lines of a traceback that
follow a record are indented.

A worker logs two lines per job at INFO (``started``, then how it ended), so a
record's cost is part of the drain rate: the timestamp text is made once per
second, and the names of a record's extras once per layout of its keys, not per
record. (The logging module's global switches that skip the
caller, thread and process lookups are left alone: other formatters in the same
process, gunicorn's among them, print those fields.)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from jobsys.settings import Settings

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def configure_logging(settings: Settings) -> None:
    """Send log records to stdout in ``settings.log_format`` (idempotent).

    jobsys's own loggers log at ``settings.log_level``; other libraries at WARNING
    and above, so their chatter stays out of the way.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.set_name("jobsys")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "jobsys"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("jobsys").setLevel(settings.log_level)
    logging.captureWarnings(True)


#: (second, its text): the last second a timestamp was made for.
_second_text: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    global _second_text
    second = int(record.created)
    cached, text = _second_text
    if second != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_text = (second, text)  # one tuple: threads see the old pair or the new
    return f"{text}.{int(record.msecs):03d}Z"


#: Most key layouts `_extra_keys` keeps (a few per program: one per `extra` shape).
LAYOUTS_CACHE_SIZE = 256
_extras_of_layout: dict[tuple[str, ...], tuple[str, ...]] = {}


def _extra_keys(record: logging.LogRecord) -> tuple[str, ...]:
    """The names of `record`'s extras, in the record's order.

    Records of one call site have the same attributes in the same order: the
    extras of each layout are picked out once, not per record (the layout is the
    whole key list, so an attribute added later, by a filter or another
    formatter, makes a layout of its own).
    """
    layout = tuple(vars(record))
    extras = _extras_of_layout.get(layout)
    if extras is None:
        extras = tuple(k for k in layout if k not in _RECORD_ATTRS)
        if len(_extras_of_layout) >= LAYOUTS_CACHE_SIZE:
            _extras_of_layout.clear()
        _extras_of_layout[layout] = extras
    return extras


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    d = vars(record)
    return {k: d[k] for k in _extra_keys(record)}


#: Escapes of the characters a logfmt value or a text message may not hold as they are.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    return _ESCAPES.get(c) or (c if c.isprintable() else f"\\u{ord(c):04x}")


def _escape(text: str) -> str:
    """`text` with every character that is not printable (newlines above all) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


#: Types whose text never needs quoting (digits, sign, ``.``, ``e``, inf, nan, True,
#: None); exact types only, a subclass may change ``__str__``.
_BARE_TYPES = frozenset({int, float, bool, type(None)})


def logfmt_value(value: object) -> str:
    """`value` as a logfmt value: bare when it can be, else quoted and escaped."""
    if type(value) in _BARE_TYPES:
        return str(value)
    text = value if type(value) is str else str(value)
    # Four `in` tests: quicker than a regex or a loop over the characters.
    if (
        text.isprintable()
        and text
        and " " not in text
        and "=" not in text
        and '"' not in text
        and "\\" not in text
    ):
        return text
    return '"' + "".join(_escape_char(c) for c in text) + '"'


def _fields(record: logging.LogRecord) -> str:
    """The extras of `record` as `` key=value`` each (empty text when none)."""
    d = vars(record)
    return "".join([f" {k}={logfmt_value(d[k])}" for k in _extra_keys(record)])


class TextFormatter(logging.Formatter):
    """``<timestamp> <LEVEL> <logger> <message> [key=value ...]`` plus any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a readable line."""
        message = _escape(record.getMessage())
        line = f"{_timestamp(record)} {record.levelname} {record.name} {message}"
        line += _fields(record)
        if record.exc_info:
            line = f"{line}\n{_indent(self.formatException(record.exc_info))}"
        if record.stack_info:
            line = f"{line}\n{_indent(self.formatStack(record.stack_info))}"
        return line


def _indent(text: str) -> str:
    # A traceback ends with the exception's text, which may hold newlines of its own:
    # every line after a record's first is indented, so none can pass for a record.
    return "  " + "\n  ".join(text.splitlines())


#: `json.dumps(..., default=str)`, its encoder made once (with an option, `dumps`
#: makes one per call).
_json_line = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a single line of JSON."""
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _json_line(out)
