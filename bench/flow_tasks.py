"""The tasks module of ``python -m bench.flow``: one no-op task."""

from __future__ import annotations

import jobsys


@jobsys.task("noop")
def noop(payload: object) -> None:
    return None
