"""`jobsys workers` and `jobsys stats`: the live workers and the queues, through the API."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.live import Live

from jobsys.cli.options import api_client, load_settings, url_and_token
from jobsys.cli.tables import stats_view, workers_table


@click.command()
@url_and_token
def workers(url: str | None, token: str | None) -> None:
    """List the live workers: where they run, what they serve and run now."""
    settings = load_settings()
    with api_client(url, token, settings) as client:
        live = client.workers()
    Console(highlight=False).print(workers_table(live))


@click.command()
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    metavar="S",
    help="With --watch: seconds between redraws.",
)
@url_and_token
def stats(watch: bool, interval_s: float, url: str | None, token: str | None) -> None:
    """Per-queue depth, in flight, scheduled, dead and throughput, and the workers."""
    settings = load_settings()
    console = Console(highlight=False)
    with api_client(url, token, settings) as client:
        if not watch:
            console.print(stats_view(client.queues(), client.workers()))
            return
        try:
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    live.update(stats_view(client.queues(), client.workers()), refresh=True)
                    time.sleep(interval_s)
        except KeyboardInterrupt:
            pass
