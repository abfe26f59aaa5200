"""The API as a Flask app in the test process, for tests that need no served one."""

from __future__ import annotations

from flask import Flask

from jobsys.api.routes import STATE_KEY, ApiState


def close_app(app: Flask) -> None:
    """Close the Redis connections of an app made by `create_app`."""
    state: ApiState = app.extensions[STATE_KEY]
    state.store.close()
    state.health.close()


#: What a producer token may call, written here apart from the code's own table
#: (jobsys.api.auth) so that the tests check that table; everything else is admin-only.
PRODUCER_ALLOWED = frozenset(
    {
        ("POST", "/submit"),
        ("POST", "/submit/batch"),
        ("GET", "/jobs"),
        ("GET", "/jobs/<job_id>"),
        ("GET", "/queues"),
        ("GET", "/schedules"),
        ("GET", "/dead-letter"),
        ("GET", "/workers"),
        ("GET", "/tasks"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/auth/whoami"),
        ("GET", "/events"),
        # workflows (docs/workflows.md)
        ("POST", "/batches"),
        ("GET", "/batches/<batch_id>"),
        ("POST", "/workflows"),
        ("GET", "/workflows/<workflow_id>"),
        ("GET", "/jobs/<job_id>/webhooks"),
        ("GET", "/queues/<name>/limits"),  # flow control (docs/flow-control.md)
    }
)
