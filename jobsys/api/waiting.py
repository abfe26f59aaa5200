"""The long-poll of ``GET /jobs/<id>?wait=<seconds>``: wait for a job to end.

One `Waiters` per API process. Requests waiting on jobs of a queue share ONE
reader of that queue's event stream (a thread; a greenlet under gunicorn's gevent
workers, which patch `threading`): it blocks on Redis (XREAD BLOCK, one connection
of the pool) and wakes the requests whose job reached a final event. A waiting
request itself holds no thread of a pool and sends nothing to Redis while it
waits: it sleeps on a `threading.Event`. The reader stops when no request waits
on its queue any more.

No end is missed: the reader's position in the stream is taken before the waiting
request reads the job's state, so an end after that read is an event after that
position. Should the reader fall behind or Redis fail for a while, each request
still reads its job again every `RECHECK_S` and when its time is up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from jobsys.errors import StoreUnavailable
from jobsys.models import FINAL_STATUSES, Job
from jobsys.store import FINAL_EVENTS, EventLog

logger = logging.getLogger(__name__)

#: How long one blocking read of the reader lasts (ms); well under the API's socket
#: timeout (STORE_TIMEOUT_S), as a blocking read must end before the socket times out.
BLOCK_MS = 1000
#: A waiting request reads its job again at least this often (seconds), whatever
#: the reader says.
RECHECK_S = 10.0
#: Pause of a reader after a failed read (seconds).
RETRY_PAUSE_S = 0.5


class _QueueReader:
    """The reader of one queue's stream and the requests waiting on its jobs."""

    def __init__(self, queue: str, cursor: str) -> None:
        self.queue = queue
        self.cursor = cursor
        #: job id -> the events of the requests waiting for it.
        self.waiting: dict[str, list[threading.Event]] = {}


class Waiters:
    """The waiting requests of one API process, by queue."""

    def __init__(self, events: EventLog, block_ms: int = BLOCK_MS) -> None:
        self._events = events
        self._block_ms = block_ms
        self._lock = threading.Lock()
        self._readers: dict[str, _QueueReader] = {}

    def wait(self, job: Job, timeout_s: float, read: Callable[[], Job]) -> Job:
        """`job` once it is final, or as it is after `timeout_s`; `read` reads it again.

        Raises what `read` raises (`JobNotFound`, `StoreUnavailable`).
        """
        if job.status in FINAL_STATUSES or timeout_s <= 0:
            return job
        deadline = time.monotonic() + timeout_s
        woken = threading.Event()
        self._register(job.queue, job.id, woken)
        try:
            job = read()  # after the reader's position was taken: no end is missed
            while job.status not in FINAL_STATUSES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                woken.wait(min(remaining, RECHECK_S))
                woken.clear()
                job = read()
        finally:
            self._unregister(job.queue, job.id, woken)
        return job

    def _register(self, queue: str, job_id: str, woken: threading.Event) -> None:
        with self._lock:
            reader = self._readers.get(queue)
            if reader is None:
                # The position first, synchronously: the caller reads the job after it.
                cursor = self._events.last_ids([queue])[queue]
                reader = self._readers[queue] = _QueueReader(queue, cursor)
                thread = threading.Thread(
                    target=self._run, args=(reader,), name=f"jobsys-wait-{queue}", daemon=True
                )
                thread.start()
            reader.waiting.setdefault(job_id, []).append(woken)

    def _unregister(self, queue: str, job_id: str, woken: threading.Event) -> None:
        with self._lock:
            reader = self._readers.get(queue)
            if reader is None:
                return
            events = reader.waiting.get(job_id, [])
            if woken in events:
                events.remove(woken)
            if not events:
                reader.waiting.pop(job_id, None)

    def _run(self, reader: _QueueReader) -> None:
        while True:
            with self._lock:
                if not reader.waiting:
                    del self._readers[reader.queue]
                    return
            try:
                events = self._events.read({reader.queue: reader.cursor}, self._block_ms)
            except StoreUnavailable as e:
                logger.warning("waiting on queue %s: %s", reader.queue, e)
                time.sleep(RETRY_PAUSE_S)
                continue
            with self._lock:
                for event in events:
                    reader.cursor = event.id
                    if event.type in FINAL_EVENTS:
                        for woken in reader.waiting.get(event.job_id, ()):
                            woken.set()
