"""The `jobsys` command.

Run the system: ``api``, ``worker``, ``dev`` (servers.py). Talk to the API:
``submit``, ``status``, ``cancel``, ``jobs`` (jobs.py), ``dlq list|retry|purge``
(dlq.py), ``workers`` and ``stats`` (stats.py), ``queues list|pause|resume``,
``promote``, ``retry``, ``priority`` (flow.py), ``events`` (events.py). Run a webhook
dispatcher: ``webhooks`` (webhooks_cmd.py).

Every command reads the environment once (`Settings.from_env`); a bad variable
prints ``error: <message>`` and exits 2. Exit codes of ``submit --wait``: 0 the
job completed, 1 it failed, 2 a usage or HTTP error (or an unreachable API), 3
``--timeout`` ran out first, 130 interrupted by Ctrl-C (the job carries on).
"""

from __future__ import annotations

import click

from jobsys import __version__
from jobsys.cli import dlq, events, flow, jobs, servers, stats, webhooks_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobsys")
def main() -> None:
    """jobsys: submit jobs over HTTP, queue them in Redis, run them in Python workers.

    Configured by environment variables: REDIS_URL (or REDIS_HOST / REDIS_PORT),
    MAX_RETRIES, SHUTDOWN_GRACE_SECONDS, JOBSYS_URL, LOG_LEVEL, LOG_FORMAT, ...
    """


for _command in (
    servers.api,
    servers.worker,
    servers.dev,
    jobs.submit,
    jobs.status,
    jobs.cancel,
    jobs.jobs,
    dlq.dlq,
    stats.workers,
    stats.stats,
    # flow control (docs/flow-control.md)
    flow.queues,
    flow.promote,
    flow.retry,
    flow.priority,
    events.events,
    webhooks_cmd.webhooks,
):
    main.add_command(_command)
