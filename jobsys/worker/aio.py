"""Runs ``async def`` handlers: one event loop, on a thread of its own, per worker process.

A runner thread that claims a job of an async task does not run it: it hands it
to `AsyncRunner.submit`, which starts it as an asyncio task on the loop (waiting
while ``ASYNC_CONCURRENCY`` of them already run) and goes on to the next job.
Each finished attempt goes, with the progress reports of running ones, onto a
queue that one I/O thread drains: it makes the Redis calls (progress, and the
settles, batched per queue), so that the loop never waits on Redis.

- Cancellation: a cancel request reaches the job's `JobContext` at a heartbeat;
  its `on_cancel` cancels the asyncio task (`CancelledError` at the handler's
  current ``await``), and the attempt ends as a failure that fail.lua turns into
  ``cancelled``.
- ``timeout_seconds``: `asyncio.timeout` around the handler, on the loop (no
  fork): an overrun cancels the task and is a failed attempt.
- Loop lag: a ticker coroutine stamps the time every `TICK_S`; a watchdog thread
  logs a warning, with the loop thread's current line, when the stamp is older
  than `LAG_WARN_S` (a handler that blocks the loop, e.g. ``time.sleep``), and
  again when the loop runs again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from jobsys import tasks
from jobsys.logs import logfmt_value
from jobsys.store import Claimed
from jobsys.worker.context import JobContext, running
from jobsys.worker.execute import Outcome, decode_payload, failed, raised, succeeded
from jobsys.worker.settle import Finished

logger = logging.getLogger(__name__)

#: How often the ticker stamps the loop's time.
TICK_S = 0.05
#: A loop whose stamp is older than this is reported as blocked.
LAG_WARN_S = 0.5
#: Most items the I/O thread takes off its queue for one round of settles.
IO_BATCH = 500

Settle = Callable[[str, list[Finished]], None]
Progress = Callable[[str, Claimed, float, str], None]


class AsyncRunner:
    """The event loop of one worker process and the threads around it."""

    def __init__(self, concurrency: int, settle: Settle, progress: Progress) -> None:
        self.concurrency = concurrency
        self._settle = settle
        self._progress = progress
        self._slots = threading.BoundedSemaphore(concurrency)
        self._running = 0
        self._idle = threading.Condition()
        self._abandoning = False
        self._io: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._io_pending = 0  # items put but not yet processed, under _idle
        self.loop = asyncio.new_event_loop()
        self._last_tick = time.monotonic()
        # Coroutines handed over by runner threads, not yet tasks of the loop.
        self._pending: collections.deque[Any] = collections.deque()
        self._wake_scheduled = False
        self._stop = threading.Event()
        self.lag_reports = 0
        self._loop_thread = threading.Thread(target=self._run_loop, name="async-loop", daemon=True)
        self._io_thread = threading.Thread(target=self._io_loop, name="async-io", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="async-watchdog", daemon=True)
        for t in (self._loop_thread, self._io_thread, self._watchdog):
            t.start()

    @property
    def running(self) -> int:
        """Async jobs started and not yet finished."""
        return self._running

    # -- from runner threads ---------------------------------------------------

    def has_free_slot(self) -> bool:
        """True when a job submitted now would start without waiting."""
        return self._running < self.concurrency

    def submit(
        self,
        queue_name: str,
        job: Claimed,
        context: JobContext,
        stopping: threading.Event,
    ) -> bool:
        """Start `job` on the loop once a slot is free; False (not started) when
        `stopping` is set first."""
        while not self._slots.acquire(timeout=0.1):
            if stopping.is_set():
                return False
        with self._idle:
            self._running += 1
        context.reporter = lambda fraction, message: self._put(
            "progress", (queue_name, job, fraction, message)
        )
        self._pending.append(self._run(queue_name, job, context))
        # One wake-up of the loop (a write to its self-pipe) for all the jobs handed
        # over before it runs: `_start_pending` clears the flag before it takes them.
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self.loop.call_soon_threadsafe(self._start_pending)
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no async job runs and every outcome is settled; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._running or self._io_pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout_s: float) -> None:
        """Let running jobs finish for up to `timeout_s`, then cancel the rest
        without recording them (the worker hands them back), settle what
        finished, and stop the loop and its threads."""
        if not self.wait_idle(timeout_s):
            self._abandoning = True
            self.loop.call_soon_threadsafe(self._cancel_all)
            self.wait_idle(1.0)
        self._stop.set()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._io.put(None)
        for t in (self._loop_thread, self._io_thread, self._watchdog):
            t.join(2.0)

    # -- on the loop -----------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._ticker())
        try:
            self.loop.run_forever()
        finally:
            left = asyncio.all_tasks(self.loop)
            for t in left:
                t.cancel()
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self.loop.close()

    async def _ticker(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await asyncio.sleep(TICK_S)

    def _start_pending(self) -> None:
        self._wake_scheduled = False
        pending = self._pending
        while pending:
            self.loop.create_task(pending.popleft())

    def _cancel_all(self) -> None:
        for t in asyncio.all_tasks(self.loop):
            if t.get_name().startswith("jobsys-job-"):
                t.cancel()

    async def _run(self, queue_name: str, job: Claimed, context: JobContext) -> None:
        current = asyncio.current_task()
        assert current is not None
        current.set_name(f"jobsys-job-{job.id}")
        start = time.perf_counter()
        outcome: Outcome | None = None
        try:

            def cancel() -> None:
                self.loop.call_soon_threadsafe(current.cancel)

            context.on_cancel = cancel
            outcome = await self._attempt(job, context, start)
        finally:
            context.on_cancel = None
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
            self._slots.release()
            if outcome is not None and not self._abandoning:
                self._put("finished", (queue_name, Finished(job, outcome)))

    async def _attempt(self, job: Claimed, context: JobContext, start: float) -> Outcome | None:
        if context.cancel_requested:  # asked before the task started
            return failed("cancelled before it started", start)
        spec = tasks.spec_for(job.task)
        assert spec is not None and spec.is_async
        timeout = asyncio.timeout(job.timeout_s) if job.timeout_s is not None else None
        try:
            payload = decode_payload(job)
            with running(context):
                if timeout is None:
                    result = await spec.fn(payload)
                else:
                    async with timeout:
                        result = await spec.fn(payload)
        # User task code runs here: any exception it raises (even SystemExit) is a
        # failed attempt, never a dead loop.
        except (Exception, SystemExit, asyncio.CancelledError) as e:
            return self._interrupted(job, context, timeout, e, start)
        return succeeded(result, start)

    def _interrupted(
        self,
        job: Claimed,
        context: JobContext,
        timeout: asyncio.Timeout | None,
        e: BaseException,
        start: float,
    ) -> Outcome | None:
        """The outcome of a handler that raised `e`; None when the worker is
        abandoning its jobs (stopping past its grace period: it hands them back)."""
        if isinstance(e, asyncio.CancelledError):
            if self._abandoning:
                return None
            if context.cancel_requested:
                return failed("cancelled while it ran (CancelledError)", start)
        elif isinstance(e, TimeoutError) and timeout is not None and timeout.expired():
            return failed(f"timed out after {job.timeout_s:g}s (timeout_seconds)", start)
        return raised(job, e, start)

    # -- the I/O thread ----------------------------------------------------------

    def _put(self, kind: str, item: Any) -> None:
        with self._idle:
            self._io_pending += 1
        self._io.put((kind, item))

    def _io_loop(self) -> None:
        while True:
            first = self._io.get()
            if first is None:
                return
            items = [first]
            while len(items) < IO_BATCH:
                try:
                    nxt = self._io.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._io.put(None)  # seen after this round
                    break
                items.append(nxt)
            try:
                self._process(items)
            # The top of a long-lived thread: log anything unexpected and go on
            # (an outcome that cannot be settled comes back through its lease).
            except Exception:
                logger.exception("async jobs: unexpected error while settling")
            finally:
                with self._idle:
                    self._io_pending -= len(items)
                    self._idle.notify_all()

    def _process(self, items: list[tuple[str, Any]]) -> None:
        by_queue: dict[str, list[Finished]] = {}
        for kind, item in items:
            if kind == "progress":
                self._progress(*item)
            else:
                queue_name, finished = item
                by_queue.setdefault(queue_name, []).append(finished)
        for queue_name, batch in by_queue.items():
            self._settle(queue_name, batch)

    # -- the watchdog -------------------------------------------------------------

    def _watch(self) -> None:
        blocked_since: float | None = None
        while not self._stop.wait(TICK_S * 2):
            lag = time.monotonic() - self._last_tick
            if lag > LAG_WARN_S and blocked_since is None:
                blocked_since = self._last_tick
                self.lag_reports += 1
                logger.warning(
                    "event loop blocked for %.2fs (a handler that does not await: "
                    "run blocking code with asyncio.to_thread) at=%s",
                    lag,
                    logfmt_value(self._loop_position()),
                    extra={"event": "loop_lag", "lag_s": round(lag, 3)},
                )
            elif lag <= LAG_WARN_S and blocked_since is not None:
                logger.warning(
                    "event loop ran again after %.2fs blocked",
                    self._last_tick - blocked_since,
                    extra={"event": "loop_lag_end"},
                )
                blocked_since = None

    def _loop_position(self) -> str:
        """Where the loop thread is now: its innermost frame outside asyncio."""
        frame = sys._current_frames().get(self._loop_thread.ident or -1)
        if frame is None:
            return "unknown"
        stack = traceback.extract_stack(frame)
        for entry in reversed(stack):
            if "asyncio" not in entry.filename and "threading" not in entry.filename:
                return f"{entry.filename}:{entry.lineno} in {entry.name}"
        return f"{stack[-1].filename}:{stack[-1].lineno}"
