"""How the CLI shows the API's JSON: the pages of `jobsys jobs` and `jobsys dlq list`, and the
tables of `jobsys workers` and `jobsys stats` (rich renderables)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group
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
            str(q.get("name", "?")) + (" (paused)" if q.get("paused") else ""),
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


def _console() -> Console:
    # Piped output is not cut at 80 columns: ids must stay whole to be pasted back.
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)


def _one_line(text: Any, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(job: dict[str, Any]) -> str:
    for name in ("failed_at", "completed_at", "cancelled_at", "started_at", "created_at"):
        if job.get(name):
            return str(job[name])
    return ""


def print_page(body: dict[str, Any], columns: list[str], as_json: bool, hint: str) -> None:
    """Print one page of a job listing: as a table with `columns`, or the JSON as is.

    `hint` is the command that fetches the next page (shown with its --cursor).
    """
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    console = _console()
    table = Table(show_edge=False, pad_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=name == "id", overflow="fold")
    for job in body["jobs"]:
        row = {
            "id": job["id"],
            "status": job["status"],
            "task": job["task"],
            "queue": job.get("queue", ""),
            "attempts": f"{job.get('attempts', 0)}/{int(job.get('max_retries', 0)) + 1}",
            "when": _when(job),
            "replayed": str(job.get("replayed", "")),
            "error": _one_line(job.get("error", "")),
        }
        table.add_row(*(row[c] for c in columns))
    if body["jobs"]:
        console.print(table)
    else:
        console.print("no jobs")
    if body.get("next_cursor"):
        console.print(f"more: {hint} --cursor {body['next_cursor']}", soft_wrap=True)
