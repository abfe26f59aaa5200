"""The HTTP API: `create_app()` builds the Flask app; `jobsys.api.server` serves it."""

from jobsys.api.app import create_app

__all__ = ["create_app"]
