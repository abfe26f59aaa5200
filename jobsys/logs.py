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

While a worker runs (`Worker.run`, inside `lines_written_in_background`), the
lines are formatted and written by a writer thread instead of the thread that
logs: a runner thread only hands a record over, and the writer formats what came
in while the runner waited on I/O, and writes it in one call, every
`WRITE_INTERVAL_S` (at once when `WAKE_AT_LINES` lines wait). The writer is not
woken for each line: waking a thread as a job starts cost the job's start ~60 µs on
a busy 2-core machine (docs/benchmarks.md). Records keep their order (one queue),
their time (taken when logged), their thread and process; a record whose text
could change before it is formatted (an argument or extra of a type other than
str, int, float, bool, None; a traceback) is formatted at once and only its write
waits. The writer is drained when the worker stops, on a second signal before the
process exits, and at interpreter exit (`logging.shutdown`); only a process killed
outright (SIGKILL, the OOM killer) loses the lines of its last `WRITE_INTERVAL_S`.
A forked child writes its own lines directly.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

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
    handler = OutputHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.set_name("jobsys")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "jobsys"]:
        root.removeHandler(old)
        old.close()
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


#: How often the writer thread writes the lines that came in meanwhile (one write
#: call): a line shows at most this late ...
WRITE_INTERVAL_S = 0.1
#: ... or as soon as this many lines wait (a burst does not pile up in memory).
WAKE_AT_LINES = 256
#: Types whose values format the same later as now.
_SCALARS = _BARE_TYPES | {str}


#: Loggers whose records carry plain values only (`only_plain_values`).
_PLAIN_LOGGERS: set[str] = set()


def only_plain_values(logger: logging.Logger) -> None:
    """Declare that every record of `logger` has a str message, and arguments and
    extras of the plain types only (its one caller makes sure): the writer thread
    formats them without a look at each value. For the per-job lines: the look
    costs about 4 µs of the runner's CPU per job (`bench.profile_worker`)."""
    _PLAIN_LOGGERS.add(logger.name)


def _formats_the_same_later(record: logging.LogRecord) -> bool:
    """True when `record` will read the same when formatted later: its message,
    arguments and extras are all plain values, and it carries no traceback."""
    if record.exc_info or record.stack_info:
        return False
    if record.name in _PLAIN_LOGGERS:
        return True
    if type(record.msg) is not str:
        return False
    args = record.args
    if args and (type(args) is not tuple or any(type(a) not in _SCALARS for a in args)):
        return False
    d = vars(record)
    return all(type(d[k]) in _SCALARS for k in _extra_keys(record))


class OutputHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """jobsys's handler: each line written at once, or, between `start_writer` and
    `stop_writer`, by a writer thread (see the module docstring)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._queue: collections.deque[logging.LogRecord | str] = collections.deque()
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._stopping = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write `record` now, or hand it to the writer thread."""
        if self._writer is None:
            super().emit(record)
            return
        queue = self._queue
        try:
            queue.append(record if _formats_the_same_later(record) else self.format(record))
        except Exception:
            self.handleError(record)
            return
        if len(queue) >= WAKE_AT_LINES and not self._wake.is_set():
            self._wake.set()

    def start_writer(self) -> None:
        """Write from a thread of its own from now on (idempotent)."""
        if self._writer is None:
            self._stopping = False
            self._writer = threading.Thread(target=self._write_loop, name="log-writer", daemon=True)
            self._writer.start()

    def stop_writer(self) -> None:
        """Write what is queued, stop the writer thread, and write directly again."""
        writer = self._writer
        if writer is None:
            return
        self._stopping = True
        self._wake.set()
        writer.join(5.0)
        self.acquire()  # no record is emitted meanwhile: none overtakes the queued ones
        try:
            self._writer = None
            self._drain()
        finally:
            self.release()

    def flush(self) -> None:
        """Write what is queued, then flush the stream."""
        self._drain()
        super().flush()

    def close(self) -> None:
        """Stop the writer (writing what is queued), then close as usual."""
        self.stop_writer()
        super().close()

    def _write_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(WRITE_INTERVAL_S)
            self._wake.clear()
            if self._queue:
                self._drain()

    def _drain(self) -> None:
        # One drainer at a time (the writer, a flush, the stop), so lines keep their order.
        if not self._drain_lock.acquire(timeout=5.0):
            return
        try:
            lines: list[str] = []
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, str):  # formatted when it was logged
                    lines.append(item)
                    continue
                try:
                    lines.append(self.format(item))
                except Exception:
                    self.handleError(item)
            if lines:
                try:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                    self.stream.flush()
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": lines[-1]}))
        finally:
            self._drain_lock.release()

    def _after_fork_in_child(self) -> None:
        # The writer thread is not in the child, and the queued lines are the
        # parent's to write: the child writes its own lines directly.
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._writer = None


def _output_handler() -> OutputHandler | None:
    for h in logging.getLogger().handlers:
        if isinstance(h, OutputHandler) and h.get_name() == "jobsys":
            return h
    return None


@contextlib.contextmanager
def lines_written_in_background() -> Iterator[None]:
    """Within: jobsys's log lines are written by a writer thread (module docstring).
    Does nothing when `configure_logging` has not installed jobsys's handler."""
    handler = _output_handler()
    if handler is None:
        yield
        return
    handler.start_writer()
    try:
        yield
    finally:
        handler.stop_writer()


def flush_output() -> None:
    """Write every queued line now (before `os._exit`, which skips `logging.shutdown`)."""
    handler = _output_handler()
    if handler is not None:
        handler.flush()


def _forget_writer_in_child() -> None:
    handler = _output_handler()
    if handler is not None:
        handler._after_fork_in_child()


os.register_at_fork(after_in_child=_forget_writer_in_child)
