"""HTTP servers a test runs in its own process, on loopback: `serving` runs one in a
thread; `Receiver` is a webhook receiver, and `verify` the docs' check of what it got
(docs/events.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from typing import Any


@contextmanager
def serving(server: BaseServer, poll_s: float = 0.01) -> Iterator[None]:
    """Serve `server` in a thread; on the way out, stop it, close its socket and join
    the thread."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_s,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Receiver(ThreadingHTTPServer):
    """Answers POSTs with the statuses of `script` in turn (the last repeats), after
    `hold_s` seconds for the first; records each request's headers and body."""

    def __init__(self, script: list[int], hold_s: float = 0.0, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.script = script
        self.hold_s = hold_s
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?x=1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dispatcher killed mid-POST: the answer has nowhere to go


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.got.append({"headers": dict(self.headers), "body": body})
            n = len(self.server.got)
        time.sleep(self.server.hold_s if n == 1 else 0)
        script = self.server.script
        status = script[min(n, len(script)) - 1]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The docs' snippet: a Standard Webhooks signature, checked with the standard library."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, sig.partition(",")[2])
        for sig in headers["webhook-signature"].split()
        if sig.startswith("v1,")
    )
