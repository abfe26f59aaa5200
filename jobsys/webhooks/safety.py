"""The SSRF rules of webhook URLs (docs/events.md).

A URL must be ``http`` or ``https`` with a host, and every address its host names
must be public (`ipaddress`'s ``is_global``): loopback, private, link-local (where
cloud metadata services live: 169.254.169.254), shared, reserved, multicast and
unspecified addresses are refused, unless WEBHOOK_ALLOWED_HOSTS names the host, the
address or a network holding it. The rule is checked at submit (a 400) and again,
on the addresses it then resolves to, when a delivery connects: the POST goes to the
address that passed, so DNS cannot change between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

#: Longest URL accepted.
MAX_URL_CHARS = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """A webhook URL that breaks a rule (the message names it)."""


def check_url(url: str) -> SplitResult:
    """The parts of `url` when its form is acceptable (scheme, host); else UnsafeUrl."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeUrl(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeUrl(f"is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("must be an http:// or https:// URL")
    if not parts.hostname:
        raise UnsafeUrl("must name a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("must not hold a user name or password")
    if port == 0:
        raise UnsafeUrl("must not name port 0")
    return parts


def _allowed(host: str, address: IpAddress | None, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry == host:
            return True
        if address is None:
            continue
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry
    return False


def _public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_public(url: str, allowed: Sequence[str] = ()) -> tuple[SplitResult, list[str]]:
    """`url`'s parts and the addresses its host resolves to, each public or allowed.

    Raises:
        UnsafeUrl: a rule is broken, or the host does not resolve.
    """
    parts = check_url(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise UnsafeUrl(f"host {host!r} does not resolve ({e})") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise UnsafeUrl(f"host {host!r} does not resolve")
    for text in found:
        address = ipaddress.ip_address(text.split("%")[0])
        if not _public(address) and not _allowed(host, address, allowed):
            raise UnsafeUrl(
                f"reaches {address}, which is not a public address (loopback, private, "
                "link-local or metadata): refused unless WEBHOOK_ALLOWED_HOSTS allows it"
            )
    return parts, found
