"""Who may call what: bearer tokens, two roles and one table of endpoints.

With no token configured (JOBSYS_PRODUCER_TOKENS, JOBSYS_ADMIN_TOKENS) the API
is open. Otherwise every request needs ``Authorization: Bearer <token>``, except
``GET /health`` and the dashboard's static files under ``/dashboard/``:

- a *producer* token may submit (``POST /submit``, ``POST /submit/batch``) and
  make the GETs that `ACCESS` lists;
- an *admin* token may do anything.

**Default deny**: an endpoint missing from `ACCESS` is admin-only, so a route
added without a thought about auth is locked down, not opened up. Every request
passes one gate, `check_request`: the Flask app runs it in a ``before_request``
hook (`install`), and the submit lane (api/lane.py) runs the same function before
it takes a request, so there is one implementation of the rules.

Tokens are compared in constant time: the presented token's SHA-256 digest is
compared with `hmac.compare_digest` against the digest of every configured token
(all of them, with no early exit), so neither the time nor the lengths compared
depend on how much of a token an attacker got right. No token is ever logged or
echoed in an answer.

`check_request` also applies the three rules of api/guards.py: the Host names an
open API answers, the limit on failed token attempts per client address (429
before any token is looked at) and the JSON Content-Type of state-changing requests.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, g, request
from flask.typing import ResponseReturnValue

from jobsys.api import guards
from jobsys.api import operations as doc
from jobsys.errors import Forbidden, Unauthorized
from jobsys.settings import Settings


class Access(enum.Enum):
    """Who may call an endpoint."""

    #: Anyone, with or without a token.
    PUBLIC = "public"
    #: Any valid token: producer or admin.
    PRODUCER = "producer"
    #: Admin tokens only.
    ADMIN = "admin"


class Role(enum.StrEnum):
    """Whom a request was made by (``GET /auth/whoami``)."""

    #: An admin token.
    ADMIN = "admin"
    #: A producer token.
    PRODUCER = "producer"
    #: No tokens are configured: everyone may do everything.
    OPEN = "open"
    #: No (valid) token, on a public endpoint while auth is on.
    ANONYMOUS = "anonymous"


#: Every endpoint that is not admin-only, by (method, Flask rule). Anything not
#: here is ADMIN (default deny). Some rules belong to routes other modules add;
#: they are listed here so each gets the right role the day it lands.
ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/health"): Access.PUBLIC,
    ("POST", "/submit"): Access.PRODUCER,
    ("POST", "/submit/batch"): Access.PRODUCER,
    ("GET", "/jobs"): Access.PRODUCER,
    ("GET", "/jobs/<job_id>"): Access.PRODUCER,
    ("GET", "/queues"): Access.PRODUCER,
    ("GET", "/schedules"): Access.PRODUCER,
    ("GET", "/dead-letter"): Access.PRODUCER,
    ("GET", "/workers"): Access.PRODUCER,
    ("GET", "/tasks"): Access.PRODUCER,
    ("GET", "/metrics"): Access.PRODUCER,
    ("GET", "/openapi.json"): Access.PRODUCER,
    ("GET", "/auth/whoami"): Access.PRODUCER,
    ("GET", "/events"): Access.PRODUCER,
    # workflows (docs/workflows.md)
    ("POST", "/batches"): Access.PRODUCER,
    ("GET", "/batches/<batch_id>"): Access.PRODUCER,
    ("POST", "/workflows"): Access.PRODUCER,
    ("GET", "/workflows/<workflow_id>"): Access.PRODUCER,
    ("GET", "/jobs/<job_id>/webhooks"): Access.PRODUCER,
    # Admin-only whether listed or not; listed for the reader.
    ("POST", "/jobs/<job_id>/cancel"): Access.ADMIN,
    ("POST", "/schedules"): Access.ADMIN,
    ("DELETE", "/schedules/<name>"): Access.ADMIN,
    ("POST", "/dead-letter/retry"): Access.ADMIN,
    ("POST", "/dead-letter/purge"): Access.ADMIN,
    # flow control (docs/flow-control.md)
    ("POST", "/queues/<name>/pause"): Access.ADMIN,
    ("POST", "/queues/<name>/resume"): Access.ADMIN,
    ("GET", "/queues/<name>/limits"): Access.PRODUCER,
    ("PUT", "/queues/<name>/limits"): Access.ADMIN,
    ("POST", "/jobs/<job_id>/promote"): Access.ADMIN,
    ("POST", "/jobs/<job_id>/retry"): Access.ADMIN,
    ("PATCH", "/jobs/<job_id>"): Access.ADMIN,
    ("POST", "/batches/<batch_id>/cancel"): Access.ADMIN,
    ("POST", "/webhooks"): Access.ADMIN,
    ("GET", "/webhooks"): Access.ADMIN,
    ("DELETE", "/webhooks/<sub_id>"): Access.ADMIN,
}

#: The dashboard's static shell (HTML, JS, CSS: no data) is served under this
#: path to anyone, for GET and HEAD only; it asks the user for a token itself.
DASHBOARD_PREFIX = "/dashboard"

#: The WWW-Authenticate header of every 401 (RFC 6750).
CHALLENGE = 'Bearer realm="jobsys"'

_HEADER_RULE = "send the header `Authorization: Bearer <token>` with a producer or admin token"


def access_for(method: str, rule: str | None, path: str = "") -> Access:
    """Who may call `method` on the route `rule` (None: no route matched `path`).

    A request that matches no route needs a valid token of any role before it
    learns that (404 or 405): an anonymous client cannot map the API.
    """
    method = "GET" if method == "HEAD" else method
    if method == "GET" and _under_dashboard(rule if rule is not None else path):
        return Access.PUBLIC
    if rule is None:
        return Access.PRODUCER
    return ACCESS.get((method, rule), Access.ADMIN)


def _under_dashboard(path: str) -> bool:
    return path == DASHBOARD_PREFIX or path.startswith(DASHBOARD_PREFIX + "/")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Checks bearer tokens against the configured ones; see the module docstring."""

    def __init__(
        self,
        producer_tokens: Iterable[str],
        admin_tokens: Iterable[str],
        *,
        allowed_hosts: frozenset[str] | None = None,
        failures: guards.FailedAttempts | None = None,
    ) -> None:
        # Only digests are kept: equal length, compared in constant time.
        self._digests = [(_digest(t), Role.PRODUCER) for t in producer_tokens]
        self._digests += [(_digest(t), Role.ADMIN) for t in admin_tokens]
        #: The Host names answered (None: any); see api/guards.py.
        self.allowed_hosts = allowed_hosts
        #: Failed token attempts per client address (None: no limit).
        self.failures = failures

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The authenticator of `settings`' tokens (open when there are none), with
        their Host rule and limit on failed attempts."""
        return cls(
            settings.producer_tokens,
            settings.admin_tokens,
            allowed_hosts=guards.allowed_hosts(settings),
            failures=guards.FailedAttempts.from_settings(settings),
        )

    @property
    def enabled(self) -> bool:
        """False in open mode (no token configured)."""
        return bool(self._digests)

    def role_of(self, token: str) -> Role | None:
        """The role of `token`, or None when it is no configured token.

        Compares against every configured token, always all of them.
        """
        presented = _digest(token)
        found: Role | None = None
        for digest, role in self._digests:
            if hmac.compare_digest(presented, digest):
                found = role
        return found

    def authenticate(self, authorization: str | None) -> Role:
        """The role of an Authorization header's bearer token.

        Raises:
            Unauthorized: no header, not ``Bearer <token>``, or an unknown token.
        """
        if not self.enabled:
            return Role.OPEN
        if authorization is None or not authorization.strip():
            raise Unauthorized(f"no Authorization header: {_HEADER_RULE}")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthorized(f"the Authorization header is not `Bearer <token>`: {_HEADER_RULE}")
        role = self.role_of(token)
        if role is None:
            raise Unauthorized(f"the bearer token is not a valid token: {_HEADER_RULE}")
        return role

    def authorize(
        self,
        method: str,
        rule: str | None,
        authorization: str | None,
        path: str = "",
        *,
        host: str | None = None,
        client: str | None = None,
        count_failure: bool = True,
    ) -> Role:
        """The role of a request for `method` `rule`, if it may make it.

        `host` is its Host header, `client` its client address (None: not checked).
        A token refused on a non-public endpoint counts as a failure of `client`
        unless `count_failure` is False.

        Raises:
            HostNotAllowed: `host` is not an allowed host (GET /health excepted).
            TooManyAttempts: `client` sends a token while it is locked out.
            Unauthorized: it needs a token and has no valid one.
            Forbidden: a producer token on an admin-only endpoint.
        """
        if rule != "/health":
            guards.check_host(host, self.allowed_hosts)
        if not self.enabled:
            return Role.OPEN
        presented = authorization is not None and authorization.strip() != ""
        if presented and client is not None and self.failures is not None:
            self.failures.check(client)
        access = access_for(method, rule, path)
        if access is Access.PUBLIC:
            try:
                return self.authenticate(authorization)
            except Unauthorized:
                return Role.ANONYMOUS
        try:
            role = self.authenticate(authorization)
        except Unauthorized:
            if presented and client is not None and self.failures is not None and count_failure:
                self.failures.failed(client)
            raise
        if access is Access.ADMIN and role is not Role.ADMIN:
            shown = rule if rule is not None else path
            raise Forbidden(f"{method} {shown} needs an admin token; this is a {role.value} token")
        return role


#: Key of the app's `Authenticator` in ``app.extensions``.
EXTENSION_KEY = "jobsys.auth"


def check_request(
    authenticator: Authenticator,
    method: str,
    rule: str | None,
    path: str,
    environ: Mapping[str, Any],
    *,
    count_failure: bool = True,
) -> Role:
    """The gate of every request before its view: Host, failed-attempt limit, token and
    role (`Authenticator.authorize`), then the JSON Content-Type of a state-changing
    request (`guards.require_json`; a request without a valid token gets 401 before 415).

    `environ` is the request's WSGI environ; `rule` the Flask rule it matched (None:
    none, `path` its path). The submit lane passes ``count_failure=False`` and hands
    any refused request to the app, whose hook then counts the failure once.
    """
    role = authenticator.authorize(
        method,
        rule,
        environ.get("HTTP_AUTHORIZATION"),
        path,
        host=environ.get("HTTP_HOST"),
        client=environ.get("REMOTE_ADDR"),
        count_failure=count_failure,
    )
    guards.require_json(method, rule, environ.get("CONTENT_TYPE"))
    return role


def install(app: Flask, authenticator: Authenticator) -> None:
    """Check every request of `app` with `check_request` before any view (or routing
    error) runs."""
    app.extensions[EXTENSION_KEY] = authenticator

    @app.before_request
    def _check() -> None:
        url_rule = request.url_rule
        rule = url_rule.rule if url_rule is not None else None
        g.auth_role = check_request(
            authenticator, request.method, rule, request.path, request.environ
        )


def current_role() -> Role:
    """The role of the current request (set by the hook `install` adds)."""
    role = g.get("auth_role")
    return role if isinstance(role, Role) else Role.ANONYMOUS


bp = Blueprint("auth", __name__)


@bp.get("/auth/whoami")
@doc.operation("whoami", {"200": ("`open` when the API has no tokens configured.", "WhoAmI")})
def whoami() -> ResponseReturnValue:
    """The role of the request's token"""
    return {"role": current_role().value}
