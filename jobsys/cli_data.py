"""`jobsys jobs` and `jobsys dlq list|retry|purge`: the listing and the dead letter,
as readable tables (rich), or as JSON with ``--json``."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from jobsys.cli import EXIT_USAGE, F, _client, _fail, _settings, _url_and_token, main
from jobsys.models import JobStatus

LIMIT = click.IntRange(1, 500)


def _paging(func: F) -> F:
    """--limit, --cursor, --json, --url and --token: the options of a listing command."""
    func = _url_and_token(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")(
        func
    )
    func = click.option("--cursor", help="Continue where the previous page ended.")(func)
    return click.option(
        "--limit", type=LIMIT, default=20, show_default=True, help="Jobs per page."
    )(func)


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


def _print_page(body: dict[str, Any], columns: list[str], as_json: bool, hint: str) -> None:
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


@main.command()
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only this status.")
@click.option("--task", help="Only this task (not indexed: a page may come back short).")
@click.option("--queue", help="Only this queue [every queue].")
@_paging
def jobs(
    status: str | None,
    task: str | None,
    queue: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """List jobs, most recent status change first."""
    settings = _settings()
    with _client(url, token, settings) as client:
        body = client.list_jobs(status=status, task=task, queue=queue, limit=limit, cursor=cursor)
    columns = ["id", "status", "task", "queue", "attempts", "when", "error"]
    _print_page(body, columns, as_json, "jobsys jobs")


@main.group()
def dlq() -> None:
    """The dead letter: jobs that failed every attempt."""


@dlq.command("list")
@click.option("--task", help="Only this task.")
@click.option("--queue", help="Only this queue [every queue].")
@_paging
def dlq_list(
    task: str | None,
    queue: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """List dead jobs, newest first, with their last error."""
    settings = _settings()
    with _client(url, token, settings) as client:
        body = client.dead_letter(task=task, queue=queue, limit=limit, cursor=cursor)
    if not as_json:
        click.echo(f"{body['total']} dead job(s)")
    columns = ["id", "task", "queue", "attempts", "when", "replayed", "error"]
    _print_page(body, columns, as_json, "jobsys dlq list")


_selection_options = [
    click.argument("ids", nargs=-1, metavar="[ID]..."),
    click.option("--task", help="Every dead job of this task."),
    click.option("--queue", help="Every dead job of this queue."),
    click.option("--all", "everything", is_flag=True, help="Every dead job."),
    _url_and_token,
]


def _with_selection(f: Any) -> Any:
    for option in reversed(_selection_options):
        f = option(f)
    return f


def _check_selection(
    ids: tuple[str, ...], task: str | None, queue: str | None, everything: bool
) -> str:
    """What the selection means, in words; exit 2 when it selects nothing or mixes kinds."""
    kinds = [bool(ids), everything, task is not None or queue is not None]
    if sum(kinds) != 1:
        _fail("give job ids, or --task and/or --queue, or --all (one of these)", EXIT_USAGE)
    if ids:
        return f"{len(ids)} dead job(s) by id"
    if everything:
        return "every dead job"
    parts = [f"task {task!r}" if task else "", f"queue {queue!r}" if queue else ""]
    return "the dead jobs of " + " in ".join(p for p in parts if p)


@dlq.command("retry")
@_with_selection
def dlq_retry(
    ids: tuple[str, ...],
    task: str | None,
    queue: str | None,
    everything: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Queue dead jobs again (fresh attempts, behind the jobs waiting)."""
    _check_selection(ids, task, queue, everything)
    settings = _settings()
    with _client(url, token, settings) as client:
        out = client.retry_dead(ids or None, task=task, queue=queue, all=everything)
    skipped = f" ({out['skipped']} skipped: not dead jobs)" if out["skipped"] else ""
    click.echo(f"retried {out['retried']} job(s){skipped}")


@dlq.command("purge")
@_with_selection
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(
    ids: tuple[str, ...],
    task: str | None,
    queue: str | None,
    everything: bool,
    url: str | None,
    token: str | None,
    yes: bool,
) -> None:
    """Delete dead jobs for good (asks first unless --yes)."""
    what = _check_selection(ids, task, queue, everything)
    settings = _settings()
    with _client(url, token, settings) as client:
        if not yes:
            total = client.dead_letter(queue=queue, limit=1)["total"]
            click.confirm(f"Delete {what} for good ({total} dead in all)?", abort=True)
        out = client.purge_dead(ids or None, task=task, queue=queue, all=everything)
    skipped = f" ({out['skipped']} skipped: not dead jobs)" if out["skipped"] else ""
    click.echo(f"purged {out['purged']} job(s){skipped}")
