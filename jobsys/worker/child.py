"""Runs one attempt in a child process, so that a timeout or a cancellation can
stop it: a thread cannot be stopped, a process can.

Jobs submitted with ``timeout_seconds`` run here. The children come from a
`forkserver` (started once, before any job, with jobsys and the tasks module
already imported), so starting one costs a fork, not a new interpreter. The
child sends its progress reports and its outcome back over a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from jobsys import tasks
from jobsys.store import Claimed
from jobsys.worker.context import JobContext, Reporter
from jobsys.worker.execute import Outcome, execute

logger = logging.getLogger(__name__)

#: How long a stopped child gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE_S = 1.0

_context: Any = None


def start_forkserver(tasks_module: str | None) -> None:
    """Start the fork server now (the process may have threads later), with the
    tasks module preloaded so each child starts without importing it."""
    global _context
    if _context is not None:
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([m for m in ("jobsys.worker.child", tasks_module) if m])
    _context = ctx


def execute_in_child(
    job: Claimed,
    simulated_work_s: float,
    context: JobContext,
    tasks_module: str | None,
    timeout_s: float,
    report: Reporter | None,
    parents: dict[str, Any] | None = None,
) -> Outcome:
    """Run `job` in a child process; stop it when it overruns `timeout_s` or its
    cancellation is requested. `parents`: what the child's
    ``current_job().parent_results()`` answers (read by the worker before; None: not
    available). Never raises."""
    start_forkserver(tasks_module)
    start = time.perf_counter()
    receiver, sender = _context.Pipe(duplex=False)
    child = _context.Process(
        target=_child_main,
        args=(sender, job, simulated_work_s, context.queue, tasks_module, parents),
        name=f"jobsys-job-{job.id}",
        daemon=True,
    )
    child.start()
    sender.close()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if receiver.poll(0.05):
                try:
                    kind, *rest = receiver.recv()
                except EOFError:
                    break  # the child died without an outcome
                if kind == "done":
                    child.join(TERMINATE_GRACE_S)
                    outcome: Outcome = rest[0]
                    return outcome
                if kind == "progress" and report is not None:
                    report(*rest)
                continue
            if context.cancel_requested:
                _stop(child)
                return _failed("stopped: its cancellation was requested", start)
            if time.monotonic() >= deadline:
                _stop(child)
                return _failed(f"timed out after {timeout_s:g}s (timeout_seconds)", start)
            if not child.is_alive() and not receiver.poll():
                break
        child.join(TERMINATE_GRACE_S)
        return _failed(f"the handler's process died (exit code {child.exitcode})", start)
    finally:
        receiver.close()


def _stop(child: Any) -> None:
    child.terminate()
    child.join(TERMINATE_GRACE_S)
    if child.is_alive():
        child.kill()
        child.join()


def _failed(error: str, start: float) -> Outcome:
    return Outcome(ok=False, error=error, duration_s=time.perf_counter() - start)


def _child_main(
    sender: Connection,
    job: Claimed,
    simulated_work_s: float,
    queue: str,
    tasks_module: str | None,
    parents: dict[str, Any] | None = None,
) -> None:
    tasks.load(tasks_module)

    def report(fraction: float, message: str) -> None:
        sender.send(("progress", fraction, message))

    context = JobContext(job.id, job.task, queue, job.attempt, reporter=report)
    if parents is not None:  # workflows: read by the worker before the fork
        context.results_reader = lambda: parents
    sender.send(("done", execute(job, simulated_work_s, context)))
    sender.close()
