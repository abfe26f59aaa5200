"""The web dashboard: static HTML, CSS and JavaScript served at ``/dashboard/``.

Everything it shows comes from the public HTTP API, which the browser calls
itself (with the operator's Bearer token when auth is on). This blueprint only
serves files: it never reads Redis, so it needs no token of its own and the
page can load, and then ask for a token, whatever the API's auth settings.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

#: The dashboard's files (index.html, style.css, js/*.js), shipped as package data.
STATIC_DIR = Path(__file__).parent / "dashboard"

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    static_folder=STATIC_DIR,
    static_url_path="/static",
)


@bp.get("/")
def index() -> Response:
    """The single page; its hash (``#/jobs``, ``#/job/<id>`` ...) picks the view."""
    response = send_from_directory(STATIC_DIR, "index.html")
    # The page is tiny, and a stale shell after an upgrade would load stale scripts.
    response.cache_control.no_cache = True
    return response


#: The dashboard's Content-Security-Policy: its own files only, no inline script or
#: style (the views set styles through the CSSOM, which CSP allows), calls to this API
#: only, and no page may frame it (clickjacking of the Cancel / Purge buttons).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


@bp.after_request
def _revalidate(response: Response) -> Response:
    # Static files are revalidated on every load (ETag/Last-Modified make that a 304),
    # so an upgraded API never runs with the scripts of an older one.
    response.cache_control.no_cache = True
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"  # frame-ancestors, for older browsers
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
