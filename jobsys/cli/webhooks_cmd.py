"""`jobsys webhooks`: run a webhook dispatcher (docs/events.md)."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import click

from jobsys.cli.options import load_settings


@click.command("webhooks")
def webhooks() -> None:
    """Deliver webhooks: lease due deliveries from the outbox, POST them signed, retry
    with backoff; until SIGTERM or Ctrl-C (attempts under way finish first)."""
    settings = load_settings()
    from jobsys.logs import configure_logging  # noqa: PLC0415
    from jobsys.store import Store  # noqa: PLC0415
    from jobsys.webhooks.dispatcher import Dispatcher  # noqa: PLC0415

    configure_logging(settings)
    store = Store(settings)
    dispatcher = Dispatcher(settings, store)

    def stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("jobsys.webhooks").info("%s: stopping", signal.Signals(signum).name)
        dispatcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        dispatcher.run()
    finally:
        store.close()
    sys.exit(0)
