"""The flow-control endpoints (docs/flow-control.md): pause and resume a queue.

Admin-only, as every endpoint missing from api/auth.py's ACCESS table. Each
handler validates, calls the Store's `flow`, serialises.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from jobsys.api.routes import state
from jobsys.api.schemas import QueueState
from jobsys.errors import QueueNotFound
from jobsys.models import check_queue_name

bp = Blueprint("jobsys_flow", __name__)


@bp.post("/queues/<name>/pause")
def pause_queue(name: str) -> ResponseReturnValue:
    """Pause a queue: 200 with its state; 404 for an unknown queue."""
    paused = state().store.flow.set_paused(_queue(name), True)
    return QueueState(name=name, paused=paused).to_api()


@bp.post("/queues/<name>/resume")
def resume_queue(name: str) -> ResponseReturnValue:
    """Resume a paused queue: 200 with its state; 404 for an unknown queue."""
    paused = state().store.flow.set_paused(_queue(name), False)
    return QueueState(name=name, paused=paused).to_api()


def _queue(name: str) -> str:
    """`name` if it is a valid queue name; anything else names no queue (404)."""
    try:
        return check_queue_name(name)
    except ValueError:
        raise QueueNotFound(name[:64]) from None
