"""Task handlers: the ``@task`` decorator, its registry, and the built-in fallbacks.

A tasks module (named by ``jobsys worker --tasks`` or ``JOBSYS_TASKS``) registers
its handlers on import::

    from jobsys import task

    @task("resize-image")
    def resize(payload):
        ...
        return {"width": 100}

A handler takes the job's payload (any JSON value, ``None`` when none was given)
and returns a JSON-serialisable result. It may be an ``async def`` function: the
worker runs those on its event loop (`jobsys.worker.aio`). When its payload
parameter is annotated with a pydantic model, it receives an instance of that
model, validated from the payload. A task with no handler simulates work for
``SIMULATED_WORK_SECONDS``; the task ``fail`` always raises.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jobsys.errors import TaskNotFound
from jobsys.schedules import periodic

Handler = Callable[[Any], Any]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its handler and what `@task` said about it."""

    name: str
    fn: Handler
    #: An ``async def`` handler: it runs on the worker's event loop.
    is_async: bool = False
    #: The pydantic model annotating the payload parameter, else None.
    model: Any = None
    #: Defaults of the task's jobs; a submit's own fields win (None: the server's).
    queue: str | None = None
    max_retries: int | None = None
    timeout_s: float | None = None
    priority: int | None = None

    def to_catalog(self) -> dict[str, Any]:
        """What a worker publishes of this task (`GET /tasks` shows it)."""
        return {
            "name": self.name,
            "async": self.is_async,
            "queue": self.queue,
            "max_retries": self.max_retries,
            "timeout_seconds": self.timeout_s,
            "priority": self.priority,
            "payload_schema": self.model.model_json_schema() if self.model is not None else None,
        }


_registry: dict[str, TaskSpec] = {}
_lock = threading.Lock()


def task(
    name: str,
    *,
    cron: str | None = None,
    queue: str | None = None,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
    priority: int | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the handler of task `name`.

    `queue`, `max_retries`, `timeout_seconds` and `priority` are the defaults of
    the task's jobs: the API fills them in when a submit leaves them out (it
    learns them from the workers that serve the task, see ``GET /tasks``).

    With `cron` (e.g. ``"0 * * * *"``), the task also runs periodically: one job
    (no payload) into `queue` (``default`` when none) at each tick, see
    `jobsys.schedules`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a task name must be a non-empty string")
    if max_retries is not None and max_retries < 0:
        raise ValueError("max_retries must be 0 or more")
    if timeout_seconds is not None and not timeout_seconds > 0:
        raise ValueError("timeout_seconds must be more than 0")
    if cron is not None:
        periodic(cron, name, queue=queue or "default")

    def register(fn: F) -> F:
        spec = TaskSpec(
            name=name,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            model=payload_model(fn),
            queue=queue,
            max_retries=max_retries,
            timeout_s=float(timeout_seconds) if timeout_seconds is not None else None,
            priority=priority,
        )
        with _lock:
            _registry[name] = spec
        return fn

    return register


def payload_model(fn: Callable[..., Any]) -> Any:
    """The pydantic model annotating `fn`'s first parameter, or None.

    Duck-typed (`model_validate` and `model_json_schema`), so that registering a
    task does not import pydantic.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: no signature
        return None
    if not params:
        return None
    try:
        hint = typing.get_type_hints(fn).get(params[0].name)
    # Evaluates the user's annotations: one that does not resolve (any error) makes
    # the handler untyped, never a failed import of the tasks module.
    except Exception:
        return None
    if isinstance(hint, type) and all(
        hasattr(hint, a) for a in ("model_validate", "model_json_schema")
    ):
        return hint
    return None


def spec_for(name: str) -> TaskSpec | None:
    """The registration of task `name`, or None when it has no handler."""
    return _registry.get(name)


def handler_for(name: str) -> Handler | None:
    """The registered handler of `name`, or None when it has none."""
    spec = _registry.get(name)
    return spec.fn if spec is not None else None


def registered() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted(_registry)


#: The built-in task every worker serves without a handler (it always fails).
BUILTIN_FAIL = "fail"


def catalog() -> list[dict[str, Any]]:
    """What a worker publishes of the tasks it serves: every registered task, and
    the built-in ``fail`` unless a handler took its name."""
    with _lock:
        specs = list(_registry.values())
    entries = [s.to_catalog() for s in specs]
    if BUILTIN_FAIL not in _registry:
        entries.append(TaskSpec(BUILTIN_FAIL, _builtin_fail).to_catalog())
    return sorted(entries, key=lambda e: str(e["name"]))


def _builtin_fail(payload: Any) -> Any:
    raise SimulatedFailure("task 'fail' always fails")


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
