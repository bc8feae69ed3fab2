"""Waiting between attempts: exponential, capped, with jitter so a crowd does not retry in step."""

from __future__ import annotations

import random


class Backoff:
    """Delays for reconnecting: 0 first (a dropped connection usually comes straight back), then
    ``first``, doubling up to ``cap``, each scaled by a random 0.75–1.25."""

    def __init__(self, first: float = 0.25, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        self.attempt += 1
        if self.attempt == 1:
            return 0.0
        base = min(self.cap, self.first * 2 ** (self.attempt - 2))
        return base * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self.attempt = 0
