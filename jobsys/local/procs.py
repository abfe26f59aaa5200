"""Child processes supervised by a parent (`jobsys dev`).

A supervised child gets its own process group, so a Ctrl-C in the terminal
(which signals the terminal's whole foreground process group) reaches only the
parent. The parent then stops its children once each, in order: the worker and
the API first, Redis last. Without this the worker would see Ctrl-C *and* the
parent's SIGTERM, and take the second signal as "stop now, abandon running
jobs"; Redis would stop before the worker had settled its jobs.

On Linux the child also gets SIGTERM when the parent dies, even by SIGKILL
(``PR_SET_PDEATHSIG``), so a killed parent leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child get SIGTERM when this process dies.

    None where the kernel offers no such thing (anything but Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolve libc here, in the parent: dlopen between fork and exec can deadlock.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
