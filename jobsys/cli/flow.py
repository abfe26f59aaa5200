"""`jobsys queues list|pause|resume`: flow control through the API
(docs/flow-control.md)."""

from __future__ import annotations

import json

import click
from rich.console import Console

from jobsys.cli.options import EXIT_FAILED, api_client, fail, load_settings, url_and_token
from jobsys.cli.tables import queues_table
from jobsys.errors import ClientError


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
