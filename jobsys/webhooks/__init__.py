"""Outbound webhooks (docs/events.md): signing, the SSRF rules, one POST, the dispatcher.

Importing this package imports no network code that runs by itself: the dispatcher
runs only in `jobsys webhooks` (and `jobsys dev`), never in a job's handler thread.
"""

from jobsys.webhooks.safety import UnsafeUrl, check_url, resolve_public
from jobsys.webhooks.signing import sign, signing_key

__all__ = ["UnsafeUrl", "check_url", "resolve_public", "sign", "signing_key"]
