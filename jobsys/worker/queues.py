"""The order in which a worker looks at its queues."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


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
