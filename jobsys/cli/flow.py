"""`jobsys queues list|pause|resume`, `jobsys promote|retry|priority`: flow control
through the API (docs/flow-control.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from jobsys.cli.options import EXIT_FAILED, api_client, fail, load_settings, url_and_token
from jobsys.cli.tables import queues_table
from jobsys.errors import ClientError
from jobsys.models import MAX_PRIORITY, MIN_PRIORITY

if TYPE_CHECKING:
    from jobsys.client import Client


@click.group()
def queues() -> None:
    """The queues: list them, pause or resume one."""


@queues.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@url_and_token
def queues_list(as_json: bool, url: str | None, token: str | None) -> None:
    """Every queue with its counts; a paused one says so."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        found = client.queues()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        Console(highlight=False).print(queues_table(found))


@queues.command("pause")
@click.argument("name")
@url_and_token
def queues_pause(name: str, url: str | None, token: str | None) -> None:
    """Pause queue NAME: it takes submits, but no worker starts its jobs (exit 1 if
    there is no such queue)."""
    _set(name, True, url, token)


@queues.command("resume")
@click.argument("name")
@url_and_token
def queues_resume(name: str, url: str | None, token: str | None) -> None:
    """Resume queue NAME (exit 1 if there is no such queue)."""
    _set(name, False, url, token)


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    n, sep, seconds = value.partition("/")
    try:
        rate = (int(n), float(seconds))
    except ValueError:
        rate = None
    if not sep or rate is None or rate[0] < 1 or not 0 < rate[1] <= 86400:
        raise click.BadParameter(f"{value!r}: give N/SECONDS, e.g. 50/10 (N >= 1)")
    return rate


@queues.command("limit")
@click.argument("name")
@click.option("--task", help="Set the limits of this task of the queue [the queue's own].")
@click.option("--rate", metavar="N/S", callback=_rate, help="At most N starts per S seconds.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N running jobs per concurrency_key.",
)
@url_and_token
def queues_limit(
    name: str,
    task: str | None,
    rate: tuple[int, float] | None,
    concurrency: int | None,
    url: str | None,
    token: str | None,
) -> None:
    """Set exactly these limits of queue NAME (or of --task in it): an option left out
    removes that limit. Prints all the queue's limits as JSON."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            limits = client.set_limits(name, task=task, rate=rate, concurrency=concurrency)
        except ClientError as e:
            if e.status == 404:
                fail(e.detail or str(e), EXIT_FAILED)
            raise
    click.echo(json.dumps(limits, indent=2))


def _set(name: str, paused: bool, url: str | None, token: str | None) -> None:
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            state = client.pause_queue(name) if paused else client.resume_queue(name)
        except ClientError as e:
            if e.status == 404:
                fail(e.detail or str(e), EXIT_FAILED)
            raise
    click.echo(f"queue {state['name']}: {'paused' if state['paused'] else 'running'}")


@click.command()
@click.argument("job_id", metavar="ID")
@url_and_token
def promote(job_id: str, url: str | None, token: str | None) -> None:
    """Run job ID now (a scheduled job or a retry waiting out its backoff) and print it
    as JSON (exit 1 if unknown or in another status)."""
    _job_action(url, token, lambda client: client.promote(job_id))


@click.command()
@click.argument("job_id", metavar="ID")
@url_and_token
def retry(job_id: str, url: str | None, token: str | None) -> None:
    """Queue failed job ID again and print it as JSON (exit 1 if unknown or not failed)."""
    _job_action(url, token, lambda client: client.retry(job_id))


@click.command()
@click.argument("job_id", metavar="ID")
@click.argument("priority", type=click.IntRange(MIN_PRIORITY, MAX_PRIORITY))
@url_and_token
def priority(job_id: str, priority: int, url: str | None, token: str | None) -> None:
    """Give waiting job ID the priority PRIORITY (-100..100) and print it as JSON (exit
    1 if unknown or already started)."""
    _job_action(url, token, lambda client: client.set_priority(job_id, priority))


def _job_action(
    url: str | None, token: str | None, action: Callable[[Client], dict[str, Any]]
) -> None:
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            job = action(client)
        except ClientError as e:
            if e.status in (404, 409):
                fail(e.detail or str(e), EXIT_FAILED)
            raise
    click.echo(json.dumps(job, indent=2))
