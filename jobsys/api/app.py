"""The app factory of the HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from jobsys.api import auth, dashboard, errors, guards, headers, routes, workflow_routes
from jobsys.api import metrics as api_metrics
from jobsys.api.lane import SubmitLane
from jobsys.api.validation import MAX_BODY_BYTES
from jobsys.settings import Settings
from jobsys.store import HealthProbe, Store, connect

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Longest socket timeout of the API's Store (REDIS_SOCKET_TIMEOUT_SECONDS may
#: make it shorter): an outage makes a submit a 503 within about this long.
STORE_TIMEOUT_S = 2.0
#: Total deadline of a /health check: connect (when it needs a new connection) and
#: PING together; past it, /health answers 503.
HEALTH_DEADLINE_S = 0.5


class _JSONProvider(DefaultJSONProvider):
    # Keep fields in the order the API documents (the response models' order).
    sort_keys = False


class JobsysApp(Flask):
    """The Flask app, with the submit lane (api/lane.py) in front of `wsgi_app`."""

    #: Takes plain submits before Flask does (None: every request goes through Flask).
    lane: SubmitLane | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        if self.lane is not None:
            return self.lane(environ, start_response)
        return self.wsgi_app(environ, start_response)


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, submit_lane: bool = True
) -> JobsysApp:
    """Build the Flask app.

    Args:
        settings: defaults to the store's settings, else `Settings.from_env()`.
        store: the Store for submits and reads; by default one whose Redis client
            gives up after `STORE_TIMEOUT_S` at most. Nothing connects to Redis until the
            first request, so the app may be built before a fork.
        submit_lane: take plain submits in `SubmitLane`; False sends every request
            through Flask (the differential test compares the two).
    """
    if settings is None:
        settings = store.settings if store is not None else Settings.from_env()
    if store is None:
        timeout_s = min(settings.redis_socket_timeout_s, STORE_TIMEOUT_S)
        store = Store(settings, client=connect(settings, socket_timeout_s=timeout_s))
    health = HealthProbe(settings, HEALTH_DEADLINE_S)

    app = JobsysApp(__name__)
    app.json = _JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[routes.STATE_KEY] = routes.ApiState(
        settings, store, health, api_metrics.make_registry(store, settings)
    )
    app.register_blueprint(routes.bp)
    app.register_blueprint(workflow_routes.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    errors.register(app)
    authenticator = auth.Authenticator.from_settings(settings)
    auth.install(app, authenticator)
    guards.install(app)  # after auth: a request without a token gets 401 before 415
    app.after_request(_add_request_id)
    if submit_lane:
        app.lane = SubmitLane(app, authenticator)
    return app


#: Key of the request id in the WSGI environ (cheaper to reach than ``flask.g``).
REQUEST_ID_KEY = "jobsys.request_id"


def request_id() -> str:
    """The id of the current request (see `_add_request_id`)."""
    environ = request.environ
    rid = environ.get(REQUEST_ID_KEY)
    if rid is None:
        rid = environ[REQUEST_ID_KEY] = headers.request_id(environ.get("HTTP_X_REQUEST_ID"))
    return str(rid)


def _add_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = request_id()
    return response
