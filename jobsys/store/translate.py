"""Where redis-py's errors become jobsys errors: every Redis call of the store runs
inside `translate_errors()`."""

from __future__ import annotations

from typing import Any

import redis

from jobsys.errors import StoreFull, StoreUnavailable


class _TranslateErrors:
    """Turn redis-py's connection-level errors into jobsys errors (see `translate_errors`).

    redis-py makes each error answer an exception by its code, and strips the
    code from the text: OOM -> OutOfMemoryError, LOADING -> BusyLoadingError,
    READONLY, MASTERDOWN, TRYAGAIN -> their classes; so the class is what is
    checked. NOREPLICAS (a primary with `min-replicas-to-write` that lacks good
    replicas) has no class of its own: a plain ResponseError whose text starts with
    the code. (A class, so that one instance serves every call.)"""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: Any) -> None:
        if e is None:
            return
        if isinstance(e, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
            raise StoreUnavailable(f"Redis is unreachable: {e}") from e
        if isinstance(e, redis.exceptions.OutOfMemoryError):
            raise StoreFull(f"Redis is out of memory: {e}") from e
        if isinstance(
            e,
            redis.exceptions.ReadOnlyError
            | redis.exceptions.MasterDownError
            | redis.exceptions.TryAgainError,
        ):
            raise StoreUnavailable(f"Redis cannot take writes now: {e}") from e
        if isinstance(e, redis.ResponseError) and str(e).startswith(_UNAVAILABLE_CODES):
            raise StoreUnavailable(f"Redis cannot take writes now: {e}") from e
        if isinstance(e, _CLUSTER_ERRORS):
            raise StoreUnavailable(f"Redis Cluster cannot serve this now: {e}") from e


#: Error answers that mean "not now" rather than "wrong request" and that redis-py
#: leaves as plain ResponseErrors.
_UNAVAILABLE_CODES = ("NOREPLICAS ",)


#: Redis Cluster errors (REDIS_CLUSTER_NODES) that mean "not now": CLUSTERDOWN, a
#: slot no node serves, no node reachable, redirects (MOVED/ASK) or TRYAGAIN still
#: answered after redis-py's follow-ups ("TTL exhausted"), and CROSSSLOT (a bug or
#: a mixed key layout; a 503 rather than a 500, and logged by the caller).
_CLUSTER_ERRORS = (
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.AskError,
    redis.exceptions.ClusterCrossSlotError,
)


_TRANSLATE = _TranslateErrors()


def translate_errors() -> _TranslateErrors:
    """Turn redis-py's connection-level errors into jobsys errors, in a ``with`` block."""
    return _TRANSLATE
