"""The queues a worker serves: the ``WORKER_QUEUES`` spec, and the order it tries them in."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from jobsys.models import check_queue_name


def parse_queue_spec(text: str) -> tuple[tuple[str, int], ...]:
    """Parse the queues a worker serves: ``"a,b,c"`` (strict order: a before b
    before c) or ``"a:5,b:2,c:1"`` (weighted). Weight 0 means "no weight given".

    Raises ValueError naming the rule.
    """
    parsed: list[tuple[str, int]] = []
    for item in text.split(","):
        name, sep, weight = item.strip().partition(":")
        check_queue_name(name)
        if sep:
            if not weight.isdigit() or not 1 <= int(weight) <= 1000:
                raise ValueError(f"the weight of queue {name!r} must be a whole number 1 to 1000")
            parsed.append((name, int(weight)))
        else:
            parsed.append((name, 0))
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError("names a queue twice")
    if len({w == 0 for _, w in parsed}) > 1:
        raise ValueError("must give a weight to every queue or to none")
    return tuple(parsed)


class QueueOrder:
    """Strict (every claim tries the queues in the listed order) or weighted.

    Weighted: each claim tries the queues in a random order in which a queue of
    weight w comes first w times as often as one of weight 1, so every queue
    gets a share and none starves (Efraimidis-Spirakis: sort by u ** (1 / w)).
    """

    def __init__(
        self, spec: Sequence[tuple[str, int]], rand: Callable[[], float] = random.random
    ) -> None:
        self.names = [name for name, _ in spec]
        self.weights = [weight for _, weight in spec]
        self.weighted = any(self.weights)
        self._rand = rand

    def next(self) -> list[str]:
        """The queues, in the order the next claim should try them."""
        if not self.weighted or len(self.names) == 1:
            return self.names
        keyed = [
            (self._rand() ** (1.0 / w), n) for n, w in zip(self.names, self.weights, strict=True)
        ]
        return [n for _, n in sorted(keyed, reverse=True)]
