"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay_s(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before the attempt after failed attempt number `attempt` (1-based).

    Full jitter (AWS's "Exponential Backoff And Jitter"): a uniform draw from
    ``[0, min(cap_s, base_s * 2 ** (attempt - 1))]``, so that jobs that failed
    together do not all retry at the same instant.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    return rand() * ceiling
