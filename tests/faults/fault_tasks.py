"""The fault suite's tasks module (workers load it with ``--tasks fault_tasks``).

`fault.work` records every execution as a side effect *outside* the Redis under
test (which the suite restarts, partitions and fills): one line
``"<tag> <pid> <attempt> <ok|err> <unix time> <unix time the handler started>\\n"``
appended to a file of its own
per worker process in ``$FAULTS_EXEC_DIR``, with O_APPEND and one ``os.write``
per line, so lines from a process killed at any instant are whole or absent.

The line is written after the handler's work, just before it returns: it is the
execution's side effect. A worker killed mid-handler records nothing for that
attempt.

Payload: ``{"tag": str, "sleep": seconds, "fail_first": bool, "always_fail": bool}``.
``fail_first`` raises on attempt 1 (a retry then succeeds); ``always_fail``
raises on every attempt, so the job ends in ``dead_letter``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from jobsys import task

_fd: int | None = None
_lock = threading.Lock()


def _log_fd() -> int:
    global _fd
    with _lock:
        if _fd is None:
            path = os.path.join(os.environ["FAULTS_EXEC_DIR"], f"exec-{os.getpid()}.log")
            _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return _fd


def current_attempt() -> int:
    """The attempt number of the job this thread runs, or 0 when it cannot be found.

    A handler is given only the payload; the worker's frames below it hold the
    claimed job (`jobsys.store.Claimed`, a local named ``job`` with ``id`` and
    ``attempt``). Test code only: it keeps the fencing token in the side effect.
    """
    frame = sys._getframe(1)
    while frame is not None:
        job = frame.f_locals.get("job")
        if job is not None and hasattr(job, "attempt") and hasattr(job, "id"):
            return int(job.attempt)
        frame = frame.f_back  # type: ignore[assignment]
    return 0


def record(tag: str, attempt: int, ok: bool, started: float) -> None:
    kind = "ok" if ok else "err"
    line = f"{tag} {os.getpid()} {attempt} {kind} {time.time():.3f} {started:.3f}\n"
    os.write(_log_fd(), line.encode())


class PlannedFailure(Exception):
    """Raised by `fault.work` when the payload asks for a failed attempt."""


@task("fault.work")
def work(payload: Any) -> Any:
    started = time.time()
    tag = str(payload["tag"])
    attempt = current_attempt()
    if payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    if payload.get("always_fail") or (payload.get("fail_first") and attempt == 1):
        record(tag, attempt, ok=False, started=started)
        raise PlannedFailure(f"planned failure of {tag} on attempt {attempt}")
    record(tag, attempt, ok=True, started=started)
    return {"tag": tag, "pid": os.getpid(), "attempt": attempt}
