"""The API's access log: gunicorn's, with each line's fields made only when the line
format uses them.

gunicorn's `Logger.atoms` makes every field an access-log format could name, for
each request (every header of the request and of the answer, every WSGI environ
variable), and its `SafeAtoms` copies them all once more to escape quotes; the
API's format (`server.ACCESS_LOG_FORMAT`) uses seven. `AccessLog` hands the format
a `LineFields` instead, which makes a field when the format reads it, with the
value and the quoting gunicorn's own would give: the line is the same, byte for
byte (tests/unit/test_access_log.py). What that saves per request is in
docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gunicorn import glogging


def _status(resp: Any, environ: dict[str, Any], took: timedelta) -> Any:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _request_line(resp: Any, environ: dict[str, Any], took: timedelta) -> str:
    return f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"


def _sent(resp: Any, environ: dict[str, Any], took: timedelta) -> str:
    sent = getattr(resp, "sent", None)
    return "-" if sent is None else str(sent)


def _ms(resp: Any, environ: dict[str, Any], took: timedelta) -> int:
    return took.seconds * 1000 + int(took.microseconds / 1000)


#: The fields made here, as gunicorn's `Logger.atoms` makes them; any other field
#: of the format is taken from gunicorn's full set.
_FIELDS: dict[str, Callable[[Any, dict[str, Any], timedelta], Any]] = {
    "h": lambda resp, environ, took: environ.get("REMOTE_ADDR", "-"),
    "r": _request_line,
    "s": _status,
    "b": _sent,
    "M": _ms,
    "a": lambda resp, environ, took: environ.get("HTTP_USER_AGENT", "-"),
}


class LineFields(dict[str, Any]):
    """The fields of one access-log line, each made when the format reads it.

    Reads as gunicorn's `SafeAtoms` does: a ``{name}o`` field (a header of the
    answer) by its lower-case name, ``"`` escaped as ``\\"`` in text, ``-`` for a
    field the request does not have.
    """

    def __init__(
        self,
        logger: glogging.Logger,
        resp: Any,
        req: Any,
        environ: dict[str, Any],
        took: timedelta,
    ) -> None:
        super().__init__()
        self._request = (logger, resp, req, environ, took)
        self._all: glogging.SafeAtoms | None = None

    def __bool__(self) -> bool:
        # `logging` formats with a mapping only when it is true (not empty).
        return True

    def __getitem__(self, key: str) -> Any:
        logger, resp, req, environ, took = self._request
        make = _FIELDS.get(key)
        if make is not None:
            value = make(resp, environ, took)
        elif key[:1] == "{" and key[-2:] == "}o":
            value = _last_header(resp.headers, key[1:-2].lower())
        else:  # a field gunicorn has and this does not make
            if self._all is None:
                self._all = glogging.SafeAtoms(
                    glogging.Logger.atoms(logger, resp, req, environ, took)
                )
            return self._all[key]
        return value.replace('"', '\\"') if isinstance(value, str) else value


def _last_header(headers: list[tuple[str, str]], name: str) -> str:
    """The value of the answer's last header named `name` (lower case), else ``-``."""
    value = "-"
    for header, text in headers:
        if header.lower() == name:
            value = text
    return value


class AccessLog(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, whose access lines read their fields from `LineFields`."""

    @staticmethod
    def atoms_wrapper_class(fields: LineFields) -> LineFields:
        # `LineFields` does the escaping and the defaults SafeAtoms would.
        return fields

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], took: timedelta) -> LineFields:
        return LineFields(self, resp, req, environ, took)
