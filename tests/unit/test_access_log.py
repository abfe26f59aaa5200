"""The API's access log (api/access_log.py) writes the line gunicorn's own logger would."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from jobsys.api.access_log import AccessLog
from jobsys.api.server import ACCESS_LOG_FORMAT

#: Every field gunicorn documents but the time (`t`, which two calls may see change),
#: headers by any case, a header or variable the request lacks, and a field that
#: does not exist.
EVERY_FIELD = (
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s %(B)s "%(f)s" "%(a)s" '
    "%(T)s %(D)s %(M)s %(L)s %(p)s %({x-request-id}o)s %({X-Request-Id}o)s %({vary}o)s "
    "%({user-agent}i)s %({HOST}i)s %({remote_addr}e)s %({missing}o)s %({missing}i)s "
    "%({missing}e)s %(nope)s"
)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    yield handler
    logging.getLogger("gunicorn.access").removeHandler(handler)


def _line(logger_class: type[glogging.Logger], fmt: str, lines: _Lines, **request: Any) -> str:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    logger = logger_class(cfg)  # sets up the "gunicorn.access" logger afresh
    logger.access_log.handlers = [lines]
    logger.access(request["resp"], request["req"], request["environ"], request["took"])
    return lines.lines.pop()


def _request(
    status: Any = "202 ACCEPTED", sent: int | None = 75, agent: str | None = 'curl "7.88"'
) -> dict[str, Any]:
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/submit?x=1",
        "PATH_INFO": "/submit",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw==",  # user:pw, the `u` field
    }
    if agent is not None:
        environ["HTTP_USER_AGENT"] = agent
    headers = [("Content-Type", "application/json"), ("Vary", "a"), ("Vary", 'b"c')]
    return {
        "resp": SimpleNamespace(
            status=status, sent=sent, headers=[*headers, ("X-Request-ID", "f00d")]
        ),
        "req": SimpleNamespace(headers=[("HOST", "api:5001"), ("USER-AGENT", agent or "")]),
        "environ": environ,
        "took": timedelta(seconds=1, microseconds=234_567),
    }


@pytest.mark.parametrize("fmt", [ACCESS_LOG_FORMAT, EVERY_FIELD])
@pytest.mark.parametrize(
    "request_",
    [
        _request(),
        _request(status=404, sent=None, agent=None),  # an int status, nothing sent, no agent
        _request(status="500 INTERNAL SERVER ERROR", sent=0, agent=""),
    ],
    ids=["plain", "bare", "empty"],
)
def test_a_line_is_the_one_gunicorn_writes(fmt: str, request_: dict[str, Any], lines: _Lines):
    ours = _line(AccessLog, fmt, lines, **request_)
    assert ours == _line(glogging.Logger, fmt, lines, **request_)


def test_the_api_line_names_its_fields(lines: _Lines):
    line = _line(AccessLog, ACCESS_LOG_FORMAT, lines, **_request())
    assert line == '127.0.0.1 "POST /submit?x=1 HTTP/1.1" 202 75 1234ms rid=f00d "curl \\"7.88\\""'


def test_an_access_log_that_is_off_writes_nothing(lines: _Lines):
    cfg = Config()  # accesslog unset: gunicorn writes no access line
    logger = AccessLog(cfg)
    logger.access_log.handlers = [lines]
    request = _request()
    logger.access(request["resp"], request["req"], request["environ"], request["took"])
    assert lines.lines == []
