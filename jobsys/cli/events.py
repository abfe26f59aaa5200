"""`jobsys events`: print the events of queues live, one JSON line each."""

from __future__ import annotations

import json

import click

from jobsys.cli.options import api_client, load_settings, url_and_token


@click.command()
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=("default",),
    show_default=True,
    metavar="Q",
    help="A queue to follow (repeat for several, at most 16).",
)
@click.option(
    "--types",
    default=None,
    metavar="T1,T2",
    help="Only these event types (e.g. completed,failed); default: every type.",
)
@click.option("--after", default=None, metavar="ID", help="Start after this event id.")
@url_and_token
def events(
    queues: tuple[str, ...],
    types: str | None,
    after: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Print every state change of the queue's jobs as it happens (GET /events), one
    JSON object a line, until Ctrl-C; reconnects by itself without a gap."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        try:
            for event in client.events(
                queues, types.split(",") if types else None, last_event_id=after
            ):
                click.echo(json.dumps(event, separators=(",", ":")))
        except KeyboardInterrupt:
            pass
