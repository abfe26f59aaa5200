"""Webhooks in Redis: the subscriptions and the outbox of deliveries (docs/events.md).

The scripts that end a job write its deliveries (``outbox`` in lua/_lib.lua);
dispatchers (jobsys/webhooks/dispatcher.py) lease them here, POST them, and record
each attempt.
"""

from __future__ import annotations

import json
import secrets
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import redis

from jobsys import stamps
from jobsys.store import keys
from jobsys.store.scripts import Scripts
from jobsys.store.translate import translate_errors

#: The event types a subscription may ask for: the ends of a job.
HOOK_EVENTS = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription: POSTs of the ends of the jobs of `queues`."""

    id: str
    url: str
    queues: tuple[str, ...]
    events: tuple[str, ...]
    #: ``whsec_<base64>``: the signing secret (shown once, at creation).
    secret: str = field(repr=False)
    created_at: str = ""

    def to_api(self, with_secret: bool = False) -> dict[str, Any]:
        """The JSON of the API (the secret only when `with_secret`)."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "queues": list(self.queues),
            "events": list(self.events),
            "created_at": self.created_at,
        }
        if with_secret:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True)
class Delivery:
    """One leased delivery: what to POST where."""

    queue: str
    id: str
    job_id: str
    type: str
    #: "cb" (the job's callback_url) or a subscription id.
    target: str
    url: str | None
    created_ms: int
    attempts: int
    #: The body a previous attempt sent (every attempt sends the same), else None.
    body: str | None


class Webhooks:
    """Subscriptions and the outbox, over one Redis client."""

    def __init__(self, client: redis.Redis, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts
        # Redis Cluster: the record and the queues' hashes lie in several slots.
        self._cluster = isinstance(client, redis.RedisCluster)

    def subscribe(self, url: str, queues: list[str], events: list[str]) -> Subscription:
        """A new subscription, with a new id and signing secret."""
        sub = Subscription(
            id="wh_" + secrets.token_hex(8),
            url=url,
            queues=tuple(dict.fromkeys(queues)),
            events=tuple(e for e in HOOK_EVENTS if e in events),
            secret="whsec_" + b64encode(secrets.token_bytes(32)).decode(),
            created_at=_now_iso(),
        )
        record = json.dumps(
            {
                "url": sub.url,
                "queues": list(sub.queues),
                "events": list(sub.events),
                "secret": sub.secret,
                "created_at": sub.created_at,
            }
        )
        wanted = ",".join(sub.events)
        with translate_errors():
            if self._cluster:
                # The record and each queue's hash lie in different slots: no MULTI.
                # The record first, so that a subscription whose queues were not all
                # written (an error answer) is listed, and DELETE removes it whole.
                self._client.hset(keys.webhooks(), sub.id, record)
                self._each_queue(sub.queues, lambda pipe, q: pipe.hset(q, sub.id, wanted))
                return sub
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(keys.webhooks(), sub.id, record)
            for q in sub.queues:
                pipe.hset(keys.subscriptions(q), sub.id, wanted)
            pipe.execute()
        return sub

    def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        with translate_errors():
            raw = cast(dict[str, str], self._client.hgetall(keys.webhooks()))
        subs = [_subscription(i, r) for i, r in raw.items()]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    def subscription(self, sub_id: str) -> Subscription | None:
        """One subscription, or None."""
        with translate_errors():
            raw = self._client.hget(keys.webhooks(), sub_id)
        return _subscription(sub_id, cast(str, raw)) if raw else None

    def unsubscribe(self, sub_id: str) -> bool:
        """Delete a subscription (its pending deliveries are dropped when due); False
        when there is none by that id."""
        sub = self.subscription(sub_id)
        if sub is None:
            return False
        with translate_errors():
            if self._cluster:
                # No MULTI across slots: the queues first, the record last, so that a
                # DELETE cut short leaves the subscription listed, to be deleted again.
                self._each_queue(sub.queues, lambda pipe, q: pipe.hdel(q, sub_id))
                self._client.hdel(keys.webhooks(), sub_id)
                return True
            pipe = self._client.pipeline(transaction=True)
            pipe.hdel(keys.webhooks(), sub_id)
            for q in sub.queues:
                pipe.hdel(keys.subscriptions(q), sub_id)
            pipe.execute()
        return True

    def _each_queue(self, queues: tuple[str, ...], write: Callable[[Any, str], Any]) -> None:
        """Cluster mode: one write to each queue's subscriptions hash (`write(pipe,
        key)`), in a cluster pipeline (one batch per shard, not atomic)."""
        pipe = self._client.pipeline(transaction=False)
        for q in queues:
            write(pipe, keys.subscriptions(q))
        pipe.execute()

    def queues(self) -> list[str]:
        """Every queue (where deliveries may wait)."""
        with translate_errors():
            return sorted(cast(set[str], self._client.smembers(keys.queues())))

    def claim(self, queue: str, most: int, lease_ms: int) -> list[Delivery]:
        """Lease up to `most` due deliveries of `queue` for `lease_ms`."""
        with translate_errors():
            leased = self._scripts.hook_claim(queue, most, lease_ms)
        out = []
        for delivery_id, raw in leased:
            rec = json.loads(raw)
            attempts = rec.get("attempts") or []
            out.append(
                Delivery(
                    queue=queue,
                    id=delivery_id,
                    job_id=rec["job"],
                    type=rec["type"],
                    target=rec["target"],
                    url=rec.get("url"),
                    created_ms=int(rec["created"]),
                    attempts=len(attempts) if isinstance(attempts, list) else 0,
                    body=rec.get("body"),
                )
            )
        return out

    def settle(
        self,
        delivery: Delivery,
        outcome: str,
        attempt: dict[str, Any],
        next_ms: int,
        body: str,
    ) -> str:
        """Record an attempt of a leased delivery: "ok", "retry", "dead" or "stale"."""
        with translate_errors():
            return self._scripts.hook_settle(
                delivery.queue,
                delivery.id,
                delivery.attempts,
                outcome,
                json.dumps(attempt),
                next_ms,
                body,
            )

    def of_job(self, job_id: str, queue: str) -> list[dict[str, Any]]:
        """The webhook deliveries of a job's end: finished ones from its hash, pending
        ones from the outbox; each with its attempts."""
        with translate_errors():
            listed = cast(str | None, self._client.hget(keys.job(job_id), "webhooks"))
        ids = [i for i in (listed or "").split(",") if i]
        if not ids:
            return []
        with translate_errors():
            kept = self._client.hmget(keys.job(job_id), [f"webhook:{i}" for i in ids])
            pending = self._client.hmget(keys.outbox(queue), ids)
        out = []
        for delivery_id, done, waiting in zip(ids, kept, pending, strict=True):
            raw = done or waiting
            if raw is None:
                continue
            rec = json.loads(raw)
            attempts = rec.get("attempts") or []
            out.append(
                {
                    "id": delivery_id,
                    "type": rec["type"],
                    "target": "callback_url" if rec["target"] == "cb" else rec["target"],
                    "status": rec.get("status", "pending"),
                    "created_at": stamps.stamp(str(rec["created"])),
                    "attempts": attempts if isinstance(attempts, list) else [],
                }
            )
        return out


def _subscription(sub_id: str, raw: str) -> Subscription:
    rec = json.loads(raw)
    return Subscription(
        id=sub_id,
        url=rec["url"],
        queues=tuple(rec["queues"]),
        events=tuple(rec["events"]),
        secret=rec["secret"],
        created_at=rec.get("created_at", ""),
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
