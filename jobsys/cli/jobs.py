"""`jobsys submit`, `status`, `cancel` and `jobs`: one job, or the listing, through the API."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from jobsys.cli.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    api_client,
    fail,
    load_settings,
    paging,
    url_and_token,
)
from jobsys.cli.tables import print_page
from jobsys.errors import ClientError
from jobsys.models import JobStatus

if TYPE_CHECKING:
    from jobsys.client import Client


def _parse_payload(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from jobsys.client import OMITTED  # noqa: PLC0415 (requests loads only when used)

    if value is None:
        return OMITTED
    try:
        return json.loads(value)
    except ValueError as e:
        raise click.BadParameter(f"not valid JSON ({e}): {value!r}") from None


@click.command()
@click.argument("task")
@click.option("--payload", metavar="JSON", callback=_parse_payload, help="The payload, as JSON.")
@click.option("--wait", is_flag=True, help="Follow the job until it finishes; print it.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0),
    metavar="S",
    help="With --wait: give up after S seconds (exit 3).",
)
@click.option("--queue", help="The queue [default].")
@click.option(
    "--priority", type=click.IntRange(-100, 100), help="-100..100; higher runs first [0]."
)
@click.option("--delay", "delay_s", type=click.FloatRange(min=0), metavar="S", help="Run in S s.")
@click.option("--run-at", metavar="TIME", help="Run at this ISO-8601 time (with Z or an offset).")
@click.option("--max-retries", type=click.IntRange(0, 100), help="Retries after the first attempt.")
@click.option(
    "--job-timeout",
    "job_timeout_s",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    metavar="S",
    help="Stop an attempt that runs longer than S seconds.",
)
# flow control (docs/flow-control.md)
@click.option(
    "--ttl",
    "ttl_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Never run unless started within S seconds (then it ends expired).",
)
@click.option("--expires-at", metavar="TIME", help="Never run unless started by this time.")
@click.option(
    "--unique-key", metavar="K", help="Queue nothing while a job with key K waits or runs."
)
@click.option(
    "--unique-for",
    "unique_for_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="With --unique-key: the key also holds S seconds from the first submit.",
)
@click.option("--concurrency-key", metavar="K", help="Its concurrency key, e.g. a tenant id.")
@url_and_token
def submit(
    task: str,
    payload: Any,
    wait: bool,
    timeout_s: float | None,
    queue: str | None,
    priority: int | None,
    delay_s: float | None,
    run_at: str | None,
    max_retries: int | None,
    job_timeout_s: float | None,
    ttl_s: float | None,
    expires_at: str | None,
    unique_key: str | None,
    unique_for_s: float | None,
    concurrency_key: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Submit a job running TASK and print its id.

    With --wait, follow its progress on stderr and print the finished job as JSON
    on stdout; exit 0 when it completed, 1 when it failed.
    """
    settings = load_settings()
    with api_client(url, token, settings) as client:
        job_id = client.submit(
            task,
            payload,
            queue=queue,
            priority=priority,
            delay_seconds=delay_s,
            run_at=run_at,
            max_retries=max_retries,
            timeout_seconds=job_timeout_s,
            ttl_seconds=ttl_s,
            expires_at=expires_at,
            unique_key=unique_key,
            unique_for_seconds=unique_for_s,
            concurrency_key=concurrency_key,
        )
        if not wait:
            click.echo(job_id)
            return
        console = Console(stderr=True, highlight=False)
        console.print(f"submitted job {job_id}", soft_wrap=True)
        try:
            job = _follow(client, console, job_id, timeout_s)
        except TimeoutError:
            fail(f"job {job_id} had not finished after {timeout_s}s", EXIT_TIMEOUT)
        except KeyboardInterrupt:
            fail(
                f"stopped waiting; job {job_id} carries on (see `jobsys status {job_id}`)",
                EXIT_INTERRUPTED,
            )
    click.echo(json.dumps(job, indent=2))
    sys.exit(0 if job.get("status") == "completed" else EXIT_FAILED)


def _follow(
    client: Client, console: Console, job_id: str, timeout_s: float | None
) -> dict[str, Any]:
    """`client.wait` with a spinner, plus one line each time status, attempts or error change."""
    shown: tuple[Any, ...] = ()
    with console.status(f"job {job_id}", spinner="dots") as spinner:

        def on_update(job: dict[str, Any]) -> None:
            nonlocal shown
            line = describe(job)
            spinner.update(Text(line, no_wrap=True, overflow="ellipsis"))
            key = (
                job.get("status"),
                job.get("attempts"),
                job.get("error"),
                job.get("progress"),
                job.get("progress_message"),
            )
            if key != shown:
                shown = key
                console.print(Text(line), soft_wrap=True)

        return client.wait(job_id, timeout_s=timeout_s, on_update=on_update)


def progress_bar(fraction: float, message: str = "", width: int = 20) -> str:
    """``[#########-----------]  45% message``: a handler's progress as text."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    bar = f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f}%"
    return f"{bar} {message}".rstrip()


def describe(job: dict[str, Any]) -> str:
    """One line about a job's progress, e.g. ``processing · attempt 1/4 · on host:42:ab``."""
    status = str(job.get("status", "?"))
    parts = [status, f"attempt {job.get('attempts', 0)}/{int(job.get('max_retries', 0)) + 1}"]
    if status == "processing" and job.get("worker"):
        parts.append(f"on {job['worker']}")
    if status == "processing" and job.get("progress") is not None:
        parts.append(progress_bar(float(job["progress"]), str(job.get("progress_message", ""))))
    if status == "scheduled" and job.get("run_at"):
        parts.append(f"due at {job['run_at']}")
    if status == "queued" and job.get("next_attempt_at"):
        parts.append(f"retry at {job['next_attempt_at']}")
    if job.get("error"):
        parts.append(f"error: {' '.join(str(job['error']).split())}")
    return " · ".join(parts)


@click.command()
@click.argument("job_id", metavar="ID")
@url_and_token
def status(job_id: str, url: str | None, token: str | None) -> None:
    """Print job ID as JSON (exit 1 if there is no such job)."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            job = client.get(job_id)
        except ClientError as e:
            if e.status == 404:
                fail(f"no job with id {job_id!r}", EXIT_FAILED)
            raise
    click.echo(json.dumps(job, indent=2))


@click.command()
@click.argument("job_id", metavar="ID")
@url_and_token
def cancel(job_id: str, url: str | None, token: str | None) -> None:
    """Cancel job ID and print it as JSON (exit 1 if unknown or already ended)."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            job = client.cancel(job_id)
        except ClientError as e:
            if e.status in (404, 409):
                fail(e.detail or str(e), EXIT_FAILED)
            raise
    click.echo(json.dumps(job, indent=2))


@click.command()
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only this status.")
@click.option("--task", help="Only this task (not indexed: a page may come back short).")
@click.option("--queue", help="Only this queue [every queue].")
@paging
def jobs(
    status: str | None,
    task: str | None,
    queue: str | None,
    include: tuple[str, ...],
    limit: int,
    cursor: str | None,
    as_json: bool,
    url: str | None,
    token: str | None,
) -> None:
    """List jobs, most recent status change first."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        body = client.list_jobs(
            status=status, task=task, queue=queue, limit=limit, cursor=cursor, include=include
        )
    columns = ["id", "status", "task", "queue", "attempts", "when", "error"]
    print_page(body, columns, as_json, "jobsys jobs")
