"""Task handlers: the ``@task`` decorator, its registry, and the built-in fallbacks.

A tasks module (named by ``jobsys worker --tasks`` or ``JOBSYS_TASKS``) registers
its handlers on import::

    from jobsys import task

    @task("resize-image")
    def resize(payload):
        ...
        return {"width": 100}

A handler takes the job's payload (any JSON value, ``None`` when none was given)
and returns a JSON-serialisable result. A task with no handler simulates work
for ``SIMULATED_WORK_SECONDS``; the task ``fail`` always raises.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from jobsys.errors import TaskNotFound
from jobsys.schedules import periodic

Handler = Callable[[Any], Any]
F = TypeVar("F", bound=Handler)

_registry: dict[str, Handler] = {}
_lock = threading.Lock()


def task(name: str, *, cron: str | None = None, queue: str = "default") -> Callable[[F], F]:
    """Register the decorated function as the handler of task `name`.

    With `cron` (e.g. ``"0 * * * *"``), the task also runs periodically: one job
    (no payload) into `queue` at each tick, see `jobsys.schedules`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a task name must be a non-empty string")
    if cron is not None:
        periodic(cron, name, queue=queue)

    def register(fn: F) -> F:
        with _lock:
            _registry[name] = fn
        return fn

    return register


def handler_for(name: str) -> Handler | None:
    """The registered handler of `name`, or None when it has none."""
    return _registry.get(name)


def registered() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted(_registry)


def load(module: str | None) -> None:
    """Import the tasks module `module` (dotted name) so its handlers register.

    The current directory is searched first, as `python -m` would, so that
    `jobsys worker --tasks mytasks` finds ``./mytasks.py``.
    """
    if not module:
        return
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise TaskNotFound(f"cannot import tasks module {module!r}: {e}") from e


class SimulatedFailure(Exception):
    """Raised by the built-in ``fail`` task."""


class RetryAfter(Exception):
    """Raise it from a handler to fail this attempt and retry after `seconds`
    (instead of the exponential backoff). The attempt still counts against
    max_retries."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        if not seconds >= 0:
            raise ValueError("RetryAfter needs a delay of 0 seconds or more")
        super().__init__(reason or f"the handler asked to retry in {seconds:g}s")
        self.seconds = float(seconds)


class RateLimited(Exception):
    """Raise it from a handler when a partner says "too many requests" (flow control,
    docs/flow-control.md): the job goes back to its queue WITHOUT using an attempt,
    and no job of its task (``per="task"``, the default) or of its whole queue
    (``per="queue"``) starts on any worker for `retry_after` seconds."""

    def __init__(self, retry_after: float, reason: str = "", *, per: str = "task") -> None:
        if not retry_after >= 0:
            raise ValueError("RateLimited needs a retry_after of 0 seconds or more")
        if per not in ("task", "queue"):
            raise ValueError('RateLimited: per must be "task" or "queue"')
        super().__init__(reason or f"rate limited: hold {per} off for {retry_after:g}s")
        self.retry_after = float(retry_after)
        self.per = per
