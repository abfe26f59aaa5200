"""One command and its answer straight on the socket of a redis-py connection.

redis-py connects, authenticates, selects the database, wraps TLS and sets the
timeouts; after that a script call needs only ``sendall`` of bytes packed with
hiredis and a hiredis ``Reader`` fed from ``recv_into``. redis-py's own
`send_packed_command` / `read_response` wrap the same two calls in health
checks, observability hooks and push-message handling that cost ~15 us per call
(about a tenth of a submit's round trip on a 2-core machine), so `Scripts` uses
`Wire` for its calls and redis-py for everything else.

Errors come out as redis-py's: a timeout is `redis.TimeoutError`, a socket error
or a closed connection `redis.ConnectionError`, and an error answer one of the
`ResponseError` classes redis-py raises for it (its own `parse_error`). A `Wire` is
bound to one socket: when redis-py reconnects, the connection gets a new one.
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis
import redis
from redis import exceptions as rx
from redis._parsers import BaseParser


class Wire:
    """The socket of one connected redis-py `Connection`, and a reader of its answers."""

    __slots__ = ("_buffer", "_reader", "sock")

    def __init__(self, sock: socket.socket, decode: bool) -> None:
        self.sock = sock
        # The exceptions redis-py makes of error answers ("OOM ..." -> OutOfMemoryError).
        options: dict[str, Any] = {"replyError": BaseParser.parse_error}
        if decode:
            options["encoding"] = "utf-8"
        self._reader = hiredis.Reader(**options)
        self._buffer = bytearray(65536)

    @classmethod
    def of(cls, conn: Any, decode: bool) -> Wire | None:
        """The `Wire` of connection `conn` (made, or made again after a reconnect),
        or None when this redis-py has no socket where jobsys looks for it."""
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return None
        wire: Wire | None = getattr(conn, "_jobsys_wire", None)
        if wire is None or wire.sock is not sock:
            wire = cls(sock, decode)
            conn._jobsys_wire = wire
        return wire

    def call(self, command: bytes) -> Any:
        """Send `command` (packed) and return its answer; raise an error answer."""
        try:
            self.sock.sendall(command)
            answer = self._reader.gets()
            while answer is False:
                n = self.sock.recv_into(self._buffer)
                if n == 0:
                    raise redis.ConnectionError("Connection closed by server.")
                self._reader.feed(self._buffer, 0, n)  # type: ignore[arg-type]  # any buffer
                answer = self._reader.gets()
        except TimeoutError as e:  # socket.timeout
            raise redis.TimeoutError(f"Timeout reading from socket: {e}") from e
        except OSError as e:
            raise redis.ConnectionError(f"Error while talking to Redis: {e}") from e
        if isinstance(answer, rx.ResponseError | rx.ConnectionError):
            raise answer
        return answer
