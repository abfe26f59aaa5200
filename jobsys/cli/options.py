"""What the commands of `jobsys` share: exit codes, reading the settings, the
--url/--token options and the API client they open."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from jobsys.errors import ClientError, ConfigError
from jobsys.logs import configure_logging
from jobsys.settings import Settings, http_url

if TYPE_CHECKING:
    from jobsys.client import Client

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

PORT = click.IntRange(1, 65535)
#: Jobs per page of a listing command.
LIMIT = click.IntRange(1, 500)
F = TypeVar("F", bound=Callable[..., Any])


def load_settings() -> Settings:
    """Read the environment once and set up logging; exit 2 on a bad variable."""
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    configure_logging(settings)
    return settings


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return http_url(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} {e}") from None


def url_and_token(func: F) -> F:
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


def paging(func: F) -> F:
    """--include, --limit, --cursor, --json, --url and --token: the options of a
    listing command."""
    func = url_and_token(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")(
        func
    )
    func = click.option("--cursor", help="Continue where the previous page ended.")(func)
    func = click.option(
        "--include",
        type=click.Choice(["payload", "result"]),
        multiple=True,
        help="Also show this field of each job (with --json); repeatable.",
    )(func)
    return click.option(
        "--limit", type=LIMIT, default=20, show_default=True, help="Jobs per page."
    )(func)


@contextmanager
def api_client(url: str | None, token: str | None, settings: Settings) -> Iterator[Client]:
    """A Client; HTTP errors and an unreachable API end the command with exit 2."""
    # Imported here: the client brings requests (and ssl), which `jobsys api` must
    # not load before gevent patches ssl.
    from jobsys.client import Client  # noqa: PLC0415

    with Client(url or settings.api_url, token=token or settings.api_token) as client:
        try:
            yield client
        except ClientError as e:
            fail(str(e), EXIT_USAGE)
