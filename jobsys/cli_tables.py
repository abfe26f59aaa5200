"""The tables of `jobsys workers` and `jobsys stats` (rich renderables, from the API's JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _age(iso: str, now: datetime) -> str:
    """``3s`` / ``5m`` / ``2h`` since an ISO-8601 time ('?' when unreadable)."""
    try:
        seconds = (now - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def workers_table(workers: list[dict[str, Any]], now: datetime | None = None) -> Table:
    """One row per live worker."""
    now = now or datetime.now(UTC)
    table = Table(title=f"{len(workers)} live worker(s)", title_justify="left")
    for name in ("id", "queues", "conc", "running", "processed", "failed", "up", "beat"):
        table.add_column(name, justify="right" if name not in ("id", "queues") else "left")
    for w in workers:
        running = w.get("current_jobs", [])
        table.add_row(
            str(w.get("id", "?")),
            ",".join(w.get("queues", [])),
            str(w.get("concurrency", "?")),
            str(len(running)) + (f" ({running[0][:8]}…)" if len(running) == 1 else ""),
            str(w.get("processed", 0)),
            str(w.get("failed", 0)),
            _age(str(w.get("started_at", "")), now),
            _age(str(w.get("last_heartbeat", "")), now) + " ago",
        )
    return table


def queues_table(queues: list[dict[str, Any]]) -> Table:
    """One row per queue: counts now, and completed/failed in the last minute and 15."""
    table = Table(title="queues", title_justify="left")
    for name in ("queue", "depth", "in flight", "scheduled", "dead", "oldest"):
        table.add_column(name, justify="left" if name == "queue" else "right")
    table.add_column("done/fail 1m", justify="right")
    table.add_column("done/fail 15m", justify="right")
    for q in queues:
        minutes = q.get("throughput", [])
        last = minutes[-1] if minutes else {"completed": 0, "failed": 0}
        done = sum(int(x.get("completed", 0)) for x in minutes)
        failed = sum(int(x.get("failed", 0)) for x in minutes)
        oldest = q.get("oldest_age_seconds")
        table.add_row(
            str(q.get("name", "?")),
            str(q.get("depth", 0)),
            str(q.get("in_flight", 0)),
            str(q.get("scheduled", 0)),
            str(q.get("dead", "-")),
            "-" if oldest is None else f"{float(oldest):.0f}s",
            f"{last.get('completed', 0)}/{last.get('failed', 0)}",
            f"{done}/{failed}",
        )
    return table


def stats_view(queues: list[dict[str, Any]], workers: list[dict[str, Any]]) -> Group:
    """What `jobsys stats` shows: the queues, then the workers."""
    busy = sum(len(w.get("current_jobs", [])) for w in workers)
    slots = sum(int(w.get("concurrency", 0)) for w in workers)
    summary = Text(f"workers: {len(workers)} live, running {busy} of {slots} slots")
    return Group(queues_table(queues), summary, workers_table(workers))
