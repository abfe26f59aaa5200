"""`jobsys dlq list|retry|purge`: the dead letter, through the API."""

from __future__ import annotations

from typing import Any

import click

from jobsys.cli.options import EXIT_USAGE, api_client, fail, load_settings, paging, url_and_token
from jobsys.cli.tables import print_page


@click.group()
def dlq() -> None:
    """The dead letter: jobs that failed every attempt."""


@dlq.command("list")
@click.option("--task", help="Only this task.")
@click.option("--queue", help="Only this queue [every queue].")
@paging
def dlq_list(
    task: str | None,
    queue: str | None,
    include: tuple[str, ...],
    limit: int,
    cursor: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """List dead jobs, newest first, with their last error."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        body = client.dead_letter(
            task=task, queue=queue, limit=limit, cursor=cursor, include=include
        )
    if not as_json:
        click.echo(f"{body['total']} dead job(s)")
    columns = ["id", "task", "queue", "attempts", "when", "replayed", "error"]
    print_page(body, columns, as_json, "jobsys dlq list")


_selection_options = [
    click.argument("ids", nargs=-1, metavar="[ID]..."),
    click.option("--task", help="Every dead job of this task."),
    click.option("--queue", help="Every dead job of this queue."),
    click.option("--all", "everything", is_flag=True, help="Every dead job."),
    url_and_token,
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
        fail("give job ids, or --task and/or --queue, or --all (one of these)", EXIT_USAGE)
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
    settings = load_settings()
    with api_client(url, token, settings) as client:
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
    settings = load_settings()
    with api_client(url, token, settings) as client:
        if not yes:
            total = client.dead_letter(queue=queue, limit=1)["total"]
            click.confirm(f"Delete {what} for good ({total} dead in all)?", abort=True)
        out = client.purge_dead(ids or None, task=task, queue=queue, all=everything)
    skipped = f" ({out['skipped']} skipped: not dead jobs)" if out["skipped"] else ""
    click.echo(f"purged {out['purged']} job(s){skipped}")
