"""`Client`: a small Python client of the jobsys HTTP API.

::

    from jobsys import Client

    with Client("http://localhost:5001", token=os.environ.get("JOBSYS_TOKEN")) as client:
        job_id = client.submit("resize-image", {"url": "https://example.com/a.png"})
        job = client.wait(job_id, timeout_s=60)
        print(job["status"], job.get("result"))

`token` is sent as ``Authorization: Bearer <token>`` on every request (an API
with tokens configured answers 401 without one, 403 when a producer token
calls an admin-only endpoint).

Errors: an HTTP error answer raises `ClientError` with the status and the
``error`` / ``detail`` of the API's JSON body; an API that cannot be reached at
all (connection refused, unknown host, timeout) raises its subclass
`ApiUnreachable`, whose ``status`` is 0.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import requests

from jobsys.errors import ApiUnreachable, ClientError
from jobsys.models import FINAL_STATUSES
from jobsys.settings import DEFAULT_API_URL

#: Longest long-poll of `Client.wait` without `on_update` (the API allows up to 60 s).
LONG_POLL_S = 30.0


class _Omitted(enum.Enum):
    OMITTED = enum.auto()


#: Default of `Client.submit`'s payload: send no ``payload`` field at all.
OMITTED = _Omitted.OMITTED


class Client:
    """Submit jobs to the jobsys API and follow them. Not thread-safe (one `requests.Session`)."""

    def __init__(
        self, base_url: str = DEFAULT_API_URL, timeout_s: float = 10.0, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: Timeout of each HTTP request (connect and read), not of `wait`.
        self.timeout_s = timeout_s
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def submit(
        self,
        task: str,
        payload: Any = OMITTED,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | str | None = None,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        expires_at: datetime | str | None = None,
        ttl_seconds: float | None = None,
        unique_key: str | None = None,
        unique_for_seconds: float | None = None,
        concurrency_key: str | None = None,
    ) -> str:
        """Submit a job and return its id.

        Args:
            task: the task name.
            payload: any JSON value; when omitted no ``payload`` is sent (``None``
                sends an explicit JSON ``null``).
            queue: the queue (default ``default``).
            priority: -100..100; higher runs first (default 0).
            delay_seconds: run no earlier than this many seconds from now.
            run_at: run no earlier than this time (an aware datetime or ISO-8601 text).
            max_retries: retries after the first attempt (default: the server's).
            timeout_seconds: longest one attempt may run before it is stopped.
            idempotency_key: makes retrying this call safe: the same key with the same
                job returns the first call's id instead of queueing another job.
            expires_at: if the job has not started by then it never runs and ends
                ``expired`` (docs/flow-control.md).
            ttl_seconds: as `expires_at`, counted from the submit.
            unique_key: while a job of the queue with this key waits or runs (or
                within `unique_for_seconds` of its submit), no other is queued: the
                id returned is that job's.
            concurrency_key: e.g. a tenant id, for the queue's concurrency limit per
                key and round-robin between keys (docs/flow-control.md).
        """
        body: dict[str, Any] = {"task": task}
        if payload is not OMITTED:
            body["payload"] = payload
        options = {
            "queue": queue,
            "priority": priority,
            "delay_seconds": delay_seconds,
            "run_at": run_at.isoformat() if isinstance(run_at, datetime) else run_at,
            "max_retries": max_retries,
            "timeout_seconds": timeout_seconds,
            "expires_at": (
                expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
            ),
            "ttl_seconds": ttl_seconds,
            "unique_key": unique_key,
            "unique_for_seconds": unique_for_seconds,
            "concurrency_key": concurrency_key,
        }
        body |= {k: v for k, v in options.items() if v is not None}
        answer = self._request("POST", "/submit", body, _idempotency(idempotency_key))
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str):
            raise ClientError(0, "bad_response", f"POST /submit answered without an id: {answer!r}")
        return job_id

    def submit_many(
        self,
        jobs: Iterable[tuple[str, Any] | str],
        *,
        queue: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Submit many jobs in one request, atomically (all or none); return their ids in order.

        Each job is a task name, or a ``(task, payload)`` pair. At most 10,000 jobs
        (and 16 MiB) per call. With `idempotency_key`, a repeat returns the first
        call's ids.
        """
        body = {
            "jobs": [
                {"task": j} if isinstance(j, str) else {"task": j[0], "payload": j[1]} for j in jobs
            ]
        }
        answer = self._request("POST", "/submit/batch", body, _idempotency(idempotency_key))
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != len(body["jobs"]):
            raise ClientError(0, "bad_response", f"POST /submit/batch answered {answer!r}")
        return [str(i) for i in ids]

    def get(self, job_id: str) -> dict[str, Any]:
        """The job as `GET /jobs/<id>` shows it; `ClientError` with status 404 if unknown."""
        return self._object("GET", f"/jobs/{quote(job_id, safe='')}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job; the job afterwards. `ClientError` 404 if unknown, 409 if it has ended."""
        return self._object("POST", f"/jobs/{quote(job_id, safe='')}/cancel")

    def schedules(self) -> list[dict[str, Any]]:
        """Every periodic schedule (`GET /schedules`)."""
        return list(self._object("GET", "/schedules")["schedules"])

    def put_schedule(
        self,
        name: str,
        cron: str,
        task: str,
        payload: Any = OMITTED,
        *,
        queue: str | None = None,
    ) -> dict[str, Any]:
        """Create or replace a periodic schedule: one job of `task` per tick of `cron` (UTC)."""
        body: dict[str, Any] = {"name": name, "cron": cron, "task": task}
        if payload is not OMITTED:
            body["payload"] = payload
        if queue is not None:
            body["queue"] = queue
        return dict(self._request("POST", "/schedules", body))

    def delete_schedule(self, name: str) -> None:
        """Remove a periodic schedule; `ClientError` 404 when there is none."""
        self._request("DELETE", f"/schedules/{quote(name, safe='')}")

    def list_jobs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        include: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A page of jobs, newest first (`GET /jobs`): ``{"jobs", "next_cursor"}``.

        Its jobs leave out ``payload`` and ``result`` unless `include` names them
        (`job` shows them)."""
        query = {"status": status, "task": task, "queue": queue, "limit": limit, "cursor": cursor}
        return self._object("GET", "/jobs" + _query(query | _include(include)))

    def dead_letter(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        include: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A page of dead jobs (`GET /dead-letter`): ``{"jobs", "next_cursor", "total"}``;
        ``payload`` and ``result`` only when `include` names them."""
        query = {"task": task, "queue": queue, "limit": limit, "cursor": cursor}
        return self._object("GET", "/dead-letter" + _query(query | _include(include)))

    def retry_dead(
        self,
        ids: Iterable[str] | None = None,
        *,
        task: str | None = None,
        queue: str | None = None,
        all: bool = False,
    ) -> dict[str, Any]:
        """Retry dead jobs: `ids`, or those of `task`/`queue`, or `all` of them:
        ``{"retried", "ids", "skipped"}``."""
        body = _selection(ids, task, queue, all)
        return dict(self._request("POST", "/dead-letter/retry", body))

    def purge_dead(
        self,
        ids: Iterable[str] | None = None,
        *,
        task: str | None = None,
        queue: str | None = None,
        all: bool = False,
    ) -> dict[str, Any]:
        """Delete dead jobs for good (same selection as `retry_dead`): ``{"purged", "skipped"}``."""
        body = _selection(ids, task, queue, all)
        return dict(self._request("POST", "/dead-letter/purge", body))

    def wait(
        self,
        job_id: str,
        timeout_s: float | None = None,
        poll_s: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until the job is ``completed``, ``failed`` or ``cancelled``, and return it.

        Long-polls ``GET /jobs/<id>?wait=``: the API answers the moment the job ends.

        Args:
            job_id: the job to follow.
            timeout_s: give up after this long (None: never).
            poll_s: with `on_update`, the longest one request waits (so a change that
                is not an end, e.g. progress, shows within it); without, requests wait
                up to `LONG_POLL_S`. An API that answers at once is asked every `poll_s`.
            on_update: called with the job on the first answer and whenever it changes.

        Raises:
            TimeoutError: the job had not finished after `timeout_s`.
            ClientError: an HTTP error or an unreachable API (not retried).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        chunk = poll_s if on_update is not None else max(poll_s, LONG_POLL_S)
        last: dict[str, Any] | None = None
        asked = 0.0
        while True:
            started = time.monotonic()
            job = self._wait_once(job_id, asked)
            if job != last:
                last = job
                if on_update is not None:
                    on_update(job)
            if job.get("status") in FINAL_STATUSES:
                return job
            now = time.monotonic()
            remaining = math.inf if deadline is None else deadline - now
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout_s}s")
            if now - started < asked / 2:  # the API did not hold the request: poll
                time.sleep(min(poll_s, remaining))
                remaining = math.inf if deadline is None else deadline - time.monotonic()
            asked = max(0.0, min(chunk, remaining))

    def _wait_once(self, job_id: str, wait_s: float) -> dict[str, Any]:
        """`GET /jobs/<id>?wait=<wait_s>`; the HTTP timeout leaves room for the wait."""
        path = f"/jobs/{quote(job_id, safe='')}"
        if wait_s <= 0:
            return self._object("GET", path)
        query = f"?wait={wait_s:.3f}"
        answer = self._request("GET", path + query, timeout_s=self.timeout_s + wait_s)
        if not isinstance(answer, dict):
            raise ClientError(0, "bad_response", f"GET {path} answered {answer!r}")
        return answer

    def events(
        self,
        queues: Iterable[str] = ("default",),
        types: Iterable[str] | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Follow `GET /events` (Server-Sent Events): yield each event's JSON, with its
        SSE id under ``"event_id"`` (pass it back as `last_event_id` to resume there).

        Starts from now, or after `last_event_id`. With `reconnect`, a dropped
        connection is opened again with the last id received (no gap within the
        stream's retained window); without, the iterator ends when it drops.

        Raises:
            ClientError: an HTTP error answer (a bad query, a refused token).
        """
        query = {"queue": ",".join(queues), "types": ",".join(types) if types else None}
        url = self.base_url + "/events" + _query(query)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with self._session.get(
                    url, headers=headers, stream=True, timeout=(self.timeout_s, 60)
                ) as response:
                    if response.status_code >= 400:
                        raise _error_from(response)
                    for event in _sse_messages(response.iter_lines(decode_unicode=True)):
                        last_event_id = event["event_id"]
                        yield event
            except (requests.ConnectionError, requests.Timeout) as e:
                if not reconnect:
                    raise ApiUnreachable(self.base_url, _reason(e)) from e
            if not reconnect:
                return
            time.sleep(0.5)

    def whoami(self) -> str:
        """The role the API gives this client's token: ``admin``, ``producer`` or ``open``."""
        return str(self._object("GET", "/auth/whoami")["role"])

    def queues(self) -> list[dict[str, Any]]:
        """Every queue with its counts and throughput (`GET /queues`)."""
        return list(self._object("GET", "/queues")["queues"])

    # -- flow control (docs/flow-control.md) --------------------------------

    def pause_queue(self, name: str) -> dict[str, Any]:
        """Pause queue `name`: ``{"name", "paused"}``; `ClientError` 404 if unknown."""
        return self._object("POST", f"/queues/{quote(name, safe='')}/pause")

    def resume_queue(self, name: str) -> dict[str, Any]:
        """Resume queue `name`: ``{"name", "paused"}``; `ClientError` 404 if unknown."""
        return self._object("POST", f"/queues/{quote(name, safe='')}/resume")

    def limits(self, queue: str) -> dict[str, Any]:
        """A queue's pause and limits (`GET /queues/<name>/limits`)."""
        return self._object("GET", f"/queues/{quote(queue, safe='')}/limits")

    def set_limits(
        self,
        queue: str,
        *,
        task: str | None = None,
        rate: tuple[int, float] | None = None,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Set exactly these limits of `queue` (or of `task` in it); None removes one:
        `rate` = (at most n starts, per this many seconds), `concurrency` = running
        jobs per concurrency_key. Returns all the queue's limits."""
        body: dict[str, Any] = {
            "rate": {"limit": rate[0], "period_seconds": rate[1]} if rate else None,
            "concurrency": concurrency,
        }
        if task is not None:
            body["task"] = task
        path = f"/queues/{quote(queue, safe='')}/limits"
        answer = self._request("PUT", path, body)
        if not isinstance(answer, dict):
            raise ClientError(0, "bad_response", f"PUT {path} answered {answer!r}")
        return answer

    def promote(self, job_id: str) -> dict[str, Any]:
        """Run a scheduled or backing-off job now; the job afterwards. `ClientError`
        404 if unknown, 409 in another status."""
        return self._object("POST", f"/jobs/{quote(job_id, safe='')}/promote")

    def retry(self, job_id: str) -> dict[str, Any]:
        """Queue a failed job again; the job afterwards. `ClientError` 404 if unknown,
        409 when it is not failed."""
        return self._object("POST", f"/jobs/{quote(job_id, safe='')}/retry")

    def set_priority(self, job_id: str, priority: int) -> dict[str, Any]:
        """Give a waiting job a new priority; the job afterwards. `ClientError` 404 if
        unknown, 409 once it has started."""
        path = f"/jobs/{quote(job_id, safe='')}"
        answer = self._request("PATCH", path, {"priority": priority})
        if not isinstance(answer, dict):
            raise ClientError(0, "bad_response", f"PATCH {path} answered {answer!r}")
        return answer

    def workers(self) -> list[dict[str, Any]]:
        """Every live worker (`GET /workers`)."""
        return list(self._object("GET", "/workers")["workers"])

    def metrics(self) -> str:
        """The Prometheus text of `GET /metrics`."""
        url = self.base_url + "/metrics"
        try:
            response = self._session.get(url, timeout=self.timeout_s, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ApiUnreachable(self.base_url, _reason(e)) from e
        if response.status_code >= 400:
            raise _error_from(response)
        return response.text

    def health(self) -> dict[str, Any]:
        """The API's `GET /health` answer; `ClientError` (e.g. 503) when unhealthy."""
        return self._object("GET", "/health")

    def _object(self, method: str, path: str) -> dict[str, Any]:
        answer = self._request(method, path)
        if not isinstance(answer, dict):
            raise ClientError(0, "bad_response", f"{method} {path} answered {answer!r}")
        return answer

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        url = self.base_url + path
        if method not in {"GET", "HEAD"}:
            # The API wants this type on every state-changing request, body or none.
            headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            response = self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ApiUnreachable(self.base_url, _reason(e)) from e
        except requests.RequestException as e:  # a malformed URL and the like
            raise ClientError(0, "request_failed", str(e)) from e
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise ClientError(
                response.status_code, "bad_response", f"not JSON: {response.text[:200]!r}"
            ) from e


def _sse_messages(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The events of a Server-Sent Events text, line by line: each message's JSON
    ``data`` with its ``id`` under ``"event_id"`` (comments and messages without
    data skipped)."""
    event_id, data = "", list[str]()
    for line in lines:
        if line == "":
            if data:
                event = json.loads("\n".join(data))
                event["event_id"] = event_id
                yield event
            data = []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _query(params: dict[str, Any]) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""


def _include(fields: Iterable[str]) -> dict[str, Any]:
    """The `include` query parameter of a listing (none when `fields` is empty)."""
    return {"include": ",".join(fields) or None}


def _selection(
    ids: Iterable[str] | None, task: str | None, queue: str | None, all_: bool
) -> dict[str, Any]:
    if ids is not None:
        return {"ids": list(ids)}
    if all_:
        return {"all": True}
    return {k: v for k, v in (("task", task), ("queue", queue)) if v is not None}


def _idempotency(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key is not None else None


def _error_from(response: requests.Response) -> ClientError:
    """`ClientError` from an error answer: its JSON ``error``/``detail``, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = body.get("detail")
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail)
        return ClientError(response.status_code, body["error"], detail)
    text = response.text.strip()[:200] or None
    return ClientError(response.status_code, response.reason or "error", text)


def _reason(e: requests.RequestException) -> str:
    """A short cause; requests buries the socket error deep inside a long message."""
    if isinstance(e, requests.Timeout):
        return "timed out"
    text = str(e)
    for marker, reason in _REASONS:
        if marker in text:
            return reason
    return text


_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("Temporary failure in name resolution", "unknown host"),
    ("Network is unreachable", "network unreachable"),
    ("No route to host", "no route to host"),
)
