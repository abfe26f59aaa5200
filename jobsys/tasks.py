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


_registry: dict[str, TaskSpec] = {}
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
        spec = TaskSpec(
            name=name,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            model=payload_model(fn),
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
    except Exception:  # an annotation that does not resolve: treat as untyped
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
