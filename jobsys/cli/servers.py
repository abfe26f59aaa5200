"""`jobsys api`, `jobsys worker` and `jobsys dev`: the commands that run the system."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobsys.cli.options import EXIT_FAILED, EXIT_USAGE, PORT, fail, load_settings
from jobsys.errors import ConfigError, JobsysError, TaskNotFound
from jobsys.settings import Settings, worker_processes
from jobsys.worker.queues import parse_queue_spec

#: The help of --host: what it takes to bind wider than loopback.
HOST_HELP = (
    "Address to bind; 0.0.0.0 for every interface, which needs JOBSYS_PRODUCER_TOKENS "
    "or JOBSYS_ADMIN_TOKENS (or JOBSYS_ALLOW_OPEN=1)."
)


def refuse_open_exposure(settings: Settings, host: str) -> None:
    """Exit 2 when the API would serve other machines with no token (`Settings.check_exposure`)."""
    try:
        settings.check_exposure(host)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", type=PORT, default=5001, show_default=True, help="Port to bind.")
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn processes [API_WORKERS].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per process [API_THREADS].")
def api(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve the HTTP API (gunicorn)."""
    settings = load_settings()
    if workers is not None:
        settings = settings.with_overrides(api_workers=workers)
    if threads is not None:
        settings = settings.with_overrides(api_threads=threads)
    refuse_open_exposure(settings, host)
    if settings.api_worker_class == "gevent":
        # gunicorn's gevent worker patches the standard library when it starts, after
        # the fork; this process has imported the app's modules by then (redis-py
        # holds ssl's classes), which gevent warns about (MonkeyPatchWarning) and
        # which leaves those references unpatched. Patch here, before anything but
        # click, logging and the settings is imported (the CLI loads requests and
        # the rest only when a command needs them).
        from gevent import monkey  # noqa: PLC0415

        monkey.patch_all()
    from jobsys.api.server import serve  # noqa: PLC0415 (keeps gunicorn out of other commands)

    serve(
        settings,
        host=host,
        port=port,
        workers=settings.api_workers,
        threads=settings.api_threads,
    )


@click.command()
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Jobs run at once [WORKER_CONCURRENCY]."
)
@click.option(
    "--tasks", "tasks_module", metavar="MODULE", help="Module of @task handlers [JOBSYS_TASKS]."
)
@click.option(
    "--queues",
    metavar="SPEC",
    help="Queues to serve: a,b,c (strict order) or a:5,b:1 (weighted) [WORKER_QUEUES].",
)
@click.option(
    "--async-concurrency",
    type=click.IntRange(min=1),
    help="Async jobs run at once on the event loop [ASYNC_CONCURRENCY].",
)
@click.option(
    "--processes",
    metavar="P",
    help="Worker processes under one supervisor; auto: one per core [WORKER_PROCESSES].",
)
@click.option(
    "--max-jobs-per-child",
    type=click.IntRange(min=0),
    help="Replace a worker process after it started N jobs; 0: never [WORKER_MAX_JOBS_PER_CHILD].",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=0),
    metavar="MB",
    help="Replace a worker process whose memory passes MB; 0: never [WORKER_MAX_MEMORY_MB].",
)
def worker(
    concurrency: int | None,
    tasks_module: str | None,
    queues: str | None,
    async_concurrency: int | None,
    processes: str | None,
    max_jobs_per_child: int | None,
    max_memory_per_child: int | None,
) -> None:
    """Run a worker: claim jobs, run their handlers, record the outcome."""
    settings = load_settings()
    if async_concurrency is not None:
        settings = settings.with_overrides(async_concurrency=async_concurrency)
    if processes is not None:
        try:
            settings = settings.with_overrides(worker_processes=worker_processes(processes))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--processes") from None
    if max_jobs_per_child is not None:
        settings = settings.with_overrides(worker_max_jobs_per_child=max_jobs_per_child)
    if max_memory_per_child is not None:
        settings = settings.with_overrides(worker_max_memory_mb=max_memory_per_child)
    if queues is not None:
        try:
            settings = settings.with_overrides(worker_queues=parse_queue_spec(queues))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--queues") from None
    if concurrency is not None:
        settings = settings.with_overrides(worker_concurrency=concurrency)
    if tasks_module:
        settings = settings.with_overrides(tasks_module=tasks_module)
    from jobsys.worker.worker import run_worker  # noqa: PLC0415

    try:
        code = run_worker(settings)
    except TaskNotFound as e:
        fail(str(e), EXIT_USAGE)
    sys.exit(code)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", type=PORT, default=5001, show_default=True, help="Port of the API.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".jobsys-data"),
    show_default=True,
    help="Where the private Redis keeps its append-only file.",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="Jobs the worker runs at once [1].")
@click.option("--tasks", "tasks_module", metavar="MODULE", help="Module of @task handlers.")
@click.option(
    "--redis-port",
    type=click.IntRange(0, 65535),
    help="Port of the private Redis; 0 = any free port [6379 if free, else any].",
)
def dev(
    host: str,
    port: int,
    data_dir: Path,
    concurrency: int | None,
    tasks_module: str | None,
    redis_port: int | None,
) -> None:
    """Run Redis, the API and a worker on this machine until Ctrl-C.

    Starts a private Redis unless REDIS_URL / REDIS_HOST / REDIS_PORT /
    REDIS_SENTINELS / REDIS_CLUSTER_NODES is set.
    """
    settings = load_settings()
    refuse_open_exposure(settings, host)  # before Redis starts; the API would refuse too
    from jobsys.local.dev import DevOptions, run_dev  # noqa: PLC0415

    options = DevOptions(
        host=host,
        port=port,
        data_dir=data_dir,
        concurrency=concurrency,
        tasks_module=tasks_module,
        redis_port=redis_port,
    )
    try:
        code = run_dev(settings, options)
    except JobsysError as e:
        fail(str(e), EXIT_FAILED)
    sys.exit(code)
