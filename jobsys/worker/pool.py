"""``jobsys worker --processes P``: a supervisor of P worker processes.

The supervisor runs no job and never touches Redis. It forks P children (it has
no thread and no connection when it forks), each a whole `Worker` (its runner
threads, heartbeat, event loop) that registers with ``supervisor`` set to the
supervisor's ``<host>:<pid>``, so ``GET /workers`` shows which children belong to
which supervisor.

- A child that dies (a crash, kill -9, the OOM killer) is started again after a
  back-off (0.5 s, doubling to `MAX_BACKOFF_S`; reset once a child has lived
  `STABLE_S`). Its jobs come back through their leases, as for any dead worker.
- A child recycles itself: after ``WORKER_MAX_JOBS_PER_CHILD`` finished attempts,
  or once its resident memory passes ``WORKER_MAX_MEMORY_MB``, it stops as on
  SIGTERM (running jobs finish, claimed ones are handed back) and exits 0; the
  supervisor starts a fresh one at once.
- SIGTERM/SIGINT to the supervisor: it sends SIGTERM to every child (each finishes
  its running jobs within SHUTDOWN_GRACE_SECONDS and hands back the rest), waits,
  and exits 0 when they all did. A second signal is passed on too (children stop
  at once; their jobs come back through their leases) and it exits 1.
- Children live in their own process group, so a terminal's Ctrl-C reaches only
  the supervisor (which passes on exactly one SIGTERM); a child whose supervisor
  is gone (kill -9) stops by itself, as on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jobsys.settings import Settings

logger = logging.getLogger(__name__)

#: First back-off before a dead child is started again; it doubles up to MAX_BACKOFF_S.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
#: A child that lived this long resets the back-off.
STABLE_S = 30.0
#: How long the supervisor waits for its children past their grace period.
EXIT_MARGIN_S = 10.0
#: How often a child checks that its supervisor still runs.
PARENT_CHECK_S = 1.0


@dataclass
class Slot:
    """One of the P places of the pool and the child that fills it."""

    index: int
    process: Any = None
    started: float = 0.0
    failures: int = 0
    #: When a dead child's replacement may start (monotonic); 0: now.
    restart_at: float = 0.0


class Supervisor:
    """Starts, watches, restarts and stops the children of one `jobsys worker`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.slots = [Slot(i) for i in range(settings.worker_processes)]
        self._ctx = multiprocessing.get_context("fork")
        self._signals = 0
        self.restarts = 0

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit code (0 when every child stopped cleanly)."""
        self._install_signal_handlers()
        logger.info(
            "worker supervisor %s starting %d processes (max jobs per child %s, memory ceiling %s)",
            self.id,
            len(self.slots),
            self.settings.worker_max_jobs_per_child or "none",
            f"{self.settings.worker_max_memory_mb} MB"
            if self.settings.worker_max_memory_mb
            else "none",
        )
        for slot in self.slots:
            self._start(slot)
        while not self._signals:
            self._reap_and_restart()
            time.sleep(0.1)
        return self._stop_all()

    def _start(self, slot: Slot) -> None:
        process = self._ctx.Process(
            target=child_main,
            args=(self.settings, self.id, os.getpid()),
            name=f"jobsys-worker-{slot.index}",
        )
        process.start()
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), 0.0
        logger.info("worker process %d started (pid %d)", slot.index, process.pid)

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            p = slot.process
            if p is not None and p.is_alive():
                continue
            if p is not None:  # it just ended
                p.join()
                code = p.exitcode
                slot.process = None
                if code == 0:
                    logger.info("worker process %d (pid %d) recycled", slot.index, p.pid)
                    slot.restart_at = now
                else:
                    lived = now - slot.started
                    slot.failures = 1 if lived >= STABLE_S else slot.failures + 1
                    delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (slot.failures - 1))
                    slot.restart_at = now + delay
                    logger.warning(
                        "worker process %d (pid %d) died (%s); starting another in %.1fs",
                        slot.index,
                        p.pid,
                        f"signal {-code}" if code is not None and code < 0 else f"exit {code}",
                        delay,
                    )
            if now >= slot.restart_at and not self._signals:
                self.restarts += 1
                self._start(slot)

    def _stop_all(self) -> int:
        live = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        logger.info("worker supervisor %s stopping %d processes", self.id, len(live))
        for p in live:
            _signal(p, signal.SIGTERM)
        forwarded = self._signals
        deadline = time.monotonic() + self.settings.shutdown_grace_s + EXIT_MARGIN_S
        clean = True
        for p in live:
            while p.is_alive() and time.monotonic() < deadline:
                if self._signals > forwarded:  # a second signal: pass it on
                    forwarded = self._signals
                    for q in live:
                        _signal(q, signal.SIGTERM)
                p.join(0.1)
            if p.is_alive():
                logger.warning("worker pid %d did not stop in time: killed", p.pid)
                p.kill()
                p.join()
            clean = clean and p.exitcode == 0
        code = 0 if clean and self._signals == 1 else 1
        logger.info("worker supervisor %s stopped (exit %d)", self.id, code)
        return code

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals == 1:
                logger.info("%s: stopping the worker processes", signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)


def _signal(process: Any, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just ended
        os.kill(process.pid, sig)


def child_main(settings: Settings, supervisor: str, parent_pid: int) -> None:
    """The body of one child: a whole worker, in its own process group."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from jobsys import tasks  # noqa: PLC0415
    from jobsys.worker.worker import Worker  # noqa: PLC0415

    tasks.load(settings.tasks_module)
    worker = Worker(settings, supervisor=supervisor)

    def watch_parent() -> None:
        while not worker.stopping.wait(PARENT_CHECK_S):
            if os.getppid() != parent_pid:
                logger.warning("worker %s: its supervisor is gone; stopping", worker.id)
                worker.request_stop()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    code = worker.run()
    if code:
        raise SystemExit(code)


def resident_mb() -> float | None:
    """This process's resident memory now, in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
