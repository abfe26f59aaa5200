"""The webhook dispatcher (`jobsys webhooks`; `jobsys dev` runs one): leases due
deliveries from every queue's outbox, POSTs them signed, records each attempt.

A delivery is leased for the attempt's timeout plus a margin: a dispatcher killed
mid-POST leaves it leased until then, and another dispatcher (or this one,
restarted) sends it again with the same ``webhook-id`` (receivers dedupe on it).
A failed attempt (no answer, a timeout, a status other than 2xx: redirects are not
followed) is retried after ``WEBHOOK_BACKOFF_SECONDS * 2^(n-1)`` (capped at an
hour) times a random factor in [0.5, 1], until WEBHOOK_MAX_AGE_SECONDS after the
job ended; then the delivery is dead-lettered.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jobsys
from jobsys.errors import JobNotFound, StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Delivery, Store
from jobsys.webhooks.safety import UnsafeUrl, resolve_public
from jobsys.webhooks.signing import sign

logger = logging.getLogger(__name__)

#: Longest pause between two retries of a delivery (seconds), before jitter.
MAX_BACKOFF_S = 3600.0
#: A lease lasts the attempt's timeout plus this (seconds).
LEASE_MARGIN_S = 5.0
#: Pause when no delivery was due (seconds).
IDLE_S = 0.5
#: Most characters of a receiver's answer kept in an attempt.
ANSWER_CHARS = 200


def backoff_s(settings: Settings, attempt: int, rng: random.Random | None = None) -> float:
    """The pause after failed attempt number `attempt` (1-based), with jitter."""
    base = min(settings.webhook_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return float(base * (rng or random).uniform(0.5, 1.0))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to `address` (checked already), whatever `host` resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to `address`, verifying the certificate for `host` (SNI too)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> tuple[int, str]:
    """POST `body` to `url` once, checking the SSRF rules on the addresses it resolves
    to now and connecting to the one that passed; no redirect is followed.
    Returns (status, the start of the answer). Raises UnsafeUrl or OSError."""
    parts, addresses = resolve_public(url, settings.webhook_allowed_hosts)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addresses[0], settings.webhook_timeout_s)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read(ANSWER_CHARS).decode("utf-8", "replace")
        return answer.status, text
    finally:
        conn.close()


class Dispatcher:
    """Leases and sends the deliveries of every queue until `stop()`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.webhook_concurrency, thread_name_prefix="jobsys-webhook"
        )

    def stop(self) -> None:
        """Finish the attempts under way and return from `run`."""
        self._stop.set()

    def run(self) -> None:
        """Dispatch until `stop()`; Redis errors are logged and waited out."""
        logger.info(
            "webhook dispatcher started (concurrency %s)", self.settings.webhook_concurrency
        )
        try:
            while not self._stop.is_set():
                try:
                    sent = self.run_once()
                except StoreUnavailable as e:
                    logger.warning("webhook dispatcher: %s", e)
                    sent = 0
                if not sent:
                    self._stop.wait(IDLE_S)
        finally:
            self._pool.shutdown(wait=True)

    def run_once(self) -> int:
        """Lease what is due in every queue and send it; the number of attempts made."""
        lease_ms = int((self.settings.webhook_timeout_s + LEASE_MARGIN_S) * 1000)
        leased: list[Delivery] = []
        for queue in self.store.webhooks.queues():
            room = self.settings.webhook_concurrency - len(leased)
            if room <= 0:
                break
            leased += self.store.webhooks.claim(queue, room, lease_ms)
        for future in [self._pool.submit(self.attempt, d) for d in leased]:
            future.result()
        return len(leased)

    def attempt(self, delivery: Delivery) -> str:
        """Send one delivery once and record the attempt: its outcome."""
        started = time.time()
        url, secret = self._target(delivery)
        body = delivery.body or self._body(delivery)
        record: dict[str, Any] = {"at": _iso(started)}
        ok = False
        if url is None or secret is None:
            record["error"] = "its subscription was deleted" if url is None else "no secret"
            outcome = "dead"
        else:
            stamp = int(started)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"jobsys-webhooks/{jobsys.__version__}",
                "webhook-id": delivery.id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(secret, delivery.id, stamp, body.encode()),
            }
            try:
                status, text = post(url, body.encode(), headers, self.settings)
                record["status"] = status
                ok = 200 <= status < 300
                if not ok:
                    record["error"] = f"answered {status}: {text}"
            except UnsafeUrl as e:
                record["error"] = f"refused: the URL {e}"
            except (OSError, http.client.HTTPException) as e:
                record["error"] = f"{type(e).__name__}: {e}"
            outcome = "ok" if ok else "retry"
        record["duration_ms"] = round((time.time() - started) * 1000, 1)
        next_ms = 0
        if outcome == "retry":
            pause = backoff_s(self.settings, delivery.attempts + 1)
            next_ms = int((time.time() + pause) * 1000)
            if next_ms - delivery.created_ms > self.settings.webhook_max_age_s * 1000:
                outcome = "dead"
        done = self.store.webhooks.settle(delivery, outcome, record, next_ms, body)
        log = logger.info if ok else logger.warning
        log(
            "webhook %s of job %s: attempt %s %s (%s)",
            delivery.id, delivery.job_id, delivery.attempts + 1, done, record.get("error", "ok"),
        )  # fmt: skip
        return done

    def _target(self, delivery: Delivery) -> tuple[str | None, str | None]:
        if delivery.target == "cb":
            return delivery.url, self.settings.webhook_secret
        sub = self.store.webhooks.subscription(delivery.target)
        return (sub.url, sub.secret) if sub else (None, None)

    def _body(self, delivery: Delivery) -> str:
        try:
            job: dict[str, Any] | None = self.store.get(delivery.job_id).to_api()
        except JobNotFound:
            job = None  # expired or purged: the delivery still says what happened
        data = job or {"id": delivery.job_id, "queue": delivery.queue, "status": delivery.type}
        return json.dumps(
            {
                "type": f"job.{delivery.type}",
                "timestamp": _iso(delivery.created_ms / 1000),
                "data": data,
            },
            separators=(",", ":"),
        )


def _iso(seconds: float) -> str:
    ms = int(seconds * 1000)
    t = time.gmtime(ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms % 1000:03d}Z"
    )
