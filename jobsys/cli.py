"""The `jobsys` command: ``api``, ``worker``, ``dev``, ``submit``, ``status``, ``cancel``,
``workers`` and ``stats``.

Every command reads the environment once (`Settings.from_env`); a bad variable
prints ``error: <message>`` and exits 2. Exit codes of ``submit --wait``: 0 the
job completed, 1 it failed, 2 a usage or HTTP error (or an unreachable API), 3
``--timeout`` ran out first, 130 interrupted by Ctrl-C (the job carries on).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from jobsys import __version__
from jobsys.cli_tables import stats_view, workers_table
from jobsys.client import OMITTED, Client
from jobsys.errors import ClientError, ConfigError, JobsysError, TaskNotFound
from jobsys.logs import configure_logging
from jobsys.settings import Settings, http_url
from jobsys.worker.queues import parse_queue_spec

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

PORT = click.IntRange(1, 65535)
F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobsys")
def main() -> None:
    """jobsys: submit jobs over HTTP, queue them in Redis, run them in Python workers.

    Configured by environment variables: REDIS_URL (or REDIS_HOST / REDIS_PORT),
    MAX_RETRIES, SHUTDOWN_GRACE_SECONDS, JOBSYS_URL, LOG_LEVEL, LOG_FORMAT, ...
    """


def _settings() -> Settings:
    """Read the environment once and set up logging; exit 2 on a bad variable."""
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    configure_logging(settings)
    return settings


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


# -- servers -------------------------------------------------------------------


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to bind.")
@click.option("--port", type=PORT, default=5001, show_default=True, help="Port to bind.")
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn processes [API_WORKERS].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per process [API_THREADS].")
def api(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve the HTTP API (gunicorn)."""
    settings = _settings()
    if workers is not None:
        settings = settings.with_overrides(api_workers=workers)
    if threads is not None:
        settings = settings.with_overrides(api_threads=threads)
    from jobsys.api.server import serve  # noqa: PLC0415 (keeps gunicorn out of other commands)

    serve(
        settings,
        host=host,
        port=port,
        workers=settings.api_workers,
        threads=settings.api_threads,
    )


@main.command()
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
def worker(concurrency: int | None, tasks_module: str | None, queues: str | None) -> None:
    """Run a worker: claim jobs, run their handlers, record the outcome."""
    settings = _settings()
    if queues is not None:
        try:
            settings = settings.with_overrides(worker_queues=parse_queue_spec(queues))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--queues") from None
    if concurrency is not None:
        settings = settings.with_overrides(worker_concurrency=concurrency)
    if tasks_module:
        settings = settings.with_overrides(tasks_module=tasks_module)
    from jobsys.worker import run_worker  # noqa: PLC0415

    try:
        code = run_worker(settings)
    except TaskNotFound as e:
        _fail(str(e), EXIT_USAGE)
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
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

    Starts a private Redis unless REDIS_URL / REDIS_HOST / REDIS_PORT is set.
    """
    settings = _settings()
    from jobsys.dev import DevOptions, run_dev  # noqa: PLC0415

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
        _fail(str(e), EXIT_FAILED)
    sys.exit(code)


# -- client --------------------------------------------------------------------


def _parse_payload(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return OMITTED
    try:
        return json.loads(value)
    except ValueError as e:
        raise click.BadParameter(f"not valid JSON ({e}): {value!r}") from None


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return http_url(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} {e}") from None


def _url_and_token(func: F) -> F:
    """The --url and --token options of the commands that talk to the API."""
    func = click.option(
        "--token",
        metavar="TOKEN",
        help="Bearer token for an API with tokens configured [JOBSYS_TOKEN, which "
        "is safer: a command line is visible to other users in `ps`].",
    )(func)
    return click.option(
        "--url",
        metavar="URL",
        callback=_check_url,
        help="Base URL of the API [JOBSYS_URL, else http://localhost:5001].",
    )(func)


@contextmanager
def _client(url: str | None, token: str | None, settings: Settings) -> Iterator[Client]:
    """A Client; HTTP errors and an unreachable API end the command with exit 2."""
    with Client(url or settings.api_url, token=token or settings.api_token) as client:
        try:
            yield client
        except ClientError as e:
            _fail(str(e), EXIT_USAGE)


@main.command()
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
@_url_and_token
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
    url: str | None,
    token: str | None,
) -> None:
    """Submit a job running TASK and print its id.

    With --wait, follow its progress on stderr and print the finished job as JSON
    on stdout; exit 0 when it completed, 1 when it failed.
    """
    settings = _settings()
    with _client(url, token, settings) as client:
        job_id = client.submit(
            task,
            payload,
            queue=queue,
            priority=priority,
            delay_seconds=delay_s,
            run_at=run_at,
            max_retries=max_retries,
            timeout_seconds=job_timeout_s,
        )
        if not wait:
            click.echo(job_id)
            return
        console = Console(stderr=True, highlight=False)
        console.print(f"submitted job {job_id}", soft_wrap=True)
        try:
            job = _follow(client, console, job_id, timeout_s)
        except TimeoutError:
            _fail(f"job {job_id} had not finished after {timeout_s}s", EXIT_TIMEOUT)
        except KeyboardInterrupt:
            _fail(
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


@main.command()
@click.argument("job_id", metavar="ID")
@_url_and_token
def status(job_id: str, url: str | None, token: str | None) -> None:
    """Print job ID as JSON (exit 1 if there is no such job)."""
    settings = _settings()
    with _client(url, token, settings) as client:
        try:
            job = client.get(job_id)
        except ClientError as e:
            if e.status == 404:
                _fail(f"no job with id {job_id!r}", EXIT_FAILED)
            raise
    click.echo(json.dumps(job, indent=2))


@main.command()
@click.argument("job_id", metavar="ID")
@_url_and_token
def cancel(job_id: str, url: str | None, token: str | None) -> None:
    """Cancel job ID and print it as JSON (exit 1 if unknown or already ended)."""
    settings = _settings()
    with _client(url, token, settings) as client:
        try:
            job = client.cancel(job_id)
        except ClientError as e:
            if e.status in (404, 409):
                _fail(e.detail or str(e), EXIT_FAILED)
            raise
    click.echo(json.dumps(job, indent=2))


@main.command()
@_url_and_token
def workers(url: str | None, token: str | None) -> None:
    """List the live workers: where they run, what they serve and run now."""
    settings = _settings()
    with _client(url, token, settings) as client:
        live = client.workers()
    Console(highlight=False).print(workers_table(live))


@main.command()
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
@_url_and_token
def stats(watch: bool, interval_s: float, url: str | None, token: str | None) -> None:
    """Per-queue depth, in flight, scheduled, dead and throughput, and the workers."""
    settings = _settings()
    console = Console(highlight=False)
    with _client(url, token, settings) as client:
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


# `jobsys jobs` and `jobsys dlq` live in their own module; importing it registers them.
from jobsys import cli_data  # noqa: E402, F401
