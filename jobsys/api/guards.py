"""Checks at the API's edge that come before any view: the Host header of an open
API, the Content-Type of state-changing requests, and a limit on failed token
attempts per client address.

- **Host** (DNS rebinding): a web page whose name an attacker re-points at 127.0.0.1
  is same-origin with an API on the victim's machine, so the browser lets its
  scripts call it. The Host header still carries the attacker's name: an API
  without tokens answers only the names of `allowed_hosts` (400 for any other).
  With tokens the check is off unless JOBSYS_ALLOWED_HOSTS is set: a page cannot
  read the operator's token, so it gets 401s. ``GET /health`` is never checked
  (probes call it by IP address; it tells nothing).
- **Content-Type**: every request that may change state (any method but GET, HEAD
  and OPTIONS) must say ``Content-Type: application/json`` (or ``*/*+json``), with
  a body or without one: a cross-site HTML form or a "simple" fetch cannot send
  that type without a CORS preflight, which this API never grants. 415 otherwise.
- **Failed attempts**: `FailedAttempts` counts the 401s of requests that carried
  a token, per client address; past JOBSYS_AUTH_MAX_FAILURES within
  JOBSYS_AUTH_LOCKOUT_SECONDS, that address's requests with a token get 429 with
  Retry-After, before the token is looked at. The count lives in each API process's
  memory (gunicorn runs several: each counts on its own) and holds at most
  `MAX_TRACKED_CLIENTS` addresses, the least recently failing dropped first.

All three run in `auth.check_request`, the one gate before every view, which the
Flask hook and the submit lane (api/lane.py) share; `install` adds the answers to
these errors.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flask import Flask, Response, jsonify
from werkzeug.exceptions import UnsupportedMediaType

from jobsys.api.validation import is_json, media_type
from jobsys.errors import HostNotAllowed, TooManyAttempts
from jobsys.settings import DEFAULT_ALLOWED_HOSTS, Settings

#: Most client addresses whose failures one process remembers (about 100 bytes each).
MAX_TRACKED_CLIENTS = 10_000
#: Methods that never change state: the only ones that need no JSON Content-Type.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Host addresses that mean "every interface": `jobsys api --host` adds no name for them.
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def default_hosts(bind_host: str = "") -> tuple[str, ...]:
    """The hosts an open API allows when JOBSYS_ALLOWED_HOSTS is not set: loopback,
    this machine's host name (in Compose, the service's ``hostname:``) and the
    address the server binds to, unless that is a wildcard."""
    names = [*DEFAULT_ALLOWED_HOSTS, socket.gethostname().lower()]
    if bind_host.lower() not in WILDCARD_BINDS:
        host = bind_host.lower()
        names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return tuple(dict.fromkeys(names))


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names the API answers, or None for any (see the module docstring)."""
    if settings.allowed_hosts is not None:
        hosts = frozenset(settings.allowed_hosts)
        return None if "*" in hosts else hosts
    return None if settings.auth_enabled else frozenset(default_hosts())


def host_name(header: str) -> str:
    """The name of a Host header, lower-cased, without its port: ``[::1]:5001`` -> ``[::1]``."""
    host = header.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def check_host(header: str | None, allowed: frozenset[str] | None) -> None:
    """Raise `HostNotAllowed` unless `header` names an allowed host (or none is set:
    an HTTP/1.0 client that sends no Host is no browser)."""
    if allowed is None or header is None or host_name(header) in allowed:
        return
    shown = host_name(header)[:100]
    raise HostNotAllowed(
        f"the Host {shown!r} is not one this API answers; add it to JOBSYS_ALLOWED_HOSTS "
        "(comma-separated names) if it is yours"
    )


class FailedAttempts:
    """Failed token attempts per client address, in this process: a fixed window that
    starts at an address's first failure; see the module docstring."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        #: client address -> (start of its window, failures in it); oldest first.
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> FailedAttempts | None:
        """The limit of `settings`, or None when JOBSYS_AUTH_MAX_FAILURES is 0."""
        if settings.auth_max_failures == 0:
            return None
        return cls(settings.auth_max_failures, settings.auth_lockout_s)

    def check(self, client: str) -> None:
        """Raise `TooManyAttempts` while `client` is locked out."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                return
            start, failures = entry
            if now - start >= self.window_s:
                del self._clients[client]
                return
        if failures >= self.max_failures:
            wait_s = max(1, math.ceil(start + self.window_s - now))
            raise TooManyAttempts(
                f"too many failed token attempts from this address ({failures} within "
                f"{self.window_s:g} s); try again in {wait_s} s",
                wait_s,
            )

    def failed(self, client: str) -> None:
        """Count one failed attempt of `client`."""
        now = self._clock()
        with self._lock:
            start, failures = self._clients.pop(client, (now, 0))
            if now - start >= self.window_s:
                start, failures = now, 0
            self._clients[client] = (start, failures + 1)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def __len__(self) -> int:
        return len(self._clients)


class NotJson(UnsupportedMediaType):
    """A state-changing request without a JSON Content-Type (415)."""


def install(app: Flask) -> None:
    """Add the answers to `NotJson` (415),
    `HostNotAllowed` (400) and `TooManyAttempts` (429) to `app`. The checks themselves
    run in `auth.check_request`, the one gate before every view."""
    app.register_error_handler(NotJson, _not_json)
    app.register_error_handler(HostNotAllowed, _host_not_allowed)
    app.register_error_handler(TooManyAttempts, _too_many_attempts)


def require_json(method: str, rule: str | None, content_type: str | None) -> None:
    """Raise `NotJson` when a request that may change state does not say it sends JSON."""
    if method in SAFE_METHODS or rule is None:
        return  # reads, and requests that will be 404 or 405 anyway
    mimetype, _ = media_type(content_type)
    if is_json(mimetype):
        return
    got = repr(mimetype[:100]) if mimetype else "none"
    raise NotJson(
        f"{method} requests must send Content-Type: application/json, with a "
        f"body or without one (a cross-site form cannot); got {got}"
    )


def error_response(status: int, error: str, detail: str, field: str) -> Response:
    # api.errors' shape; not imported from there, which imports auth, which imports this.
    response = jsonify({"error": error, "detail": detail, "field": field})
    response.status_code = status
    return response


def _not_json(e: NotJson) -> Response:
    return error_response(415, "unsupported media type", str(e.description), "Content-Type")


def _host_not_allowed(e: HostNotAllowed) -> Response:
    return error_response(400, "host not allowed", str(e), field="Host")


def _too_many_attempts(e: TooManyAttempts) -> Response:
    response = error_response(429, "too many requests", str(e), field="Authorization")
    response.headers["Retry-After"] = str(e.retry_after_s)
    return response
