"""The last minute of a queue's traffic: events counted in a sliding window, and wait percentiles."""

from __future__ import annotations

import collections
import math

__all__ = ["MINUTE", "Recent", "percentile"]

#: How far back rates and waits look, in seconds.
MINUTE = 60.0


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (0 < p ≤ 100) by nearest rank; None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Recent:
    """Values stamped with the time they were seen, forgetting those older than ``span`` seconds."""

    def __init__(self, span: float = MINUTE, limit: int = 100_000) -> None:
        self.span = span
        self._items: collections.deque[tuple[float, float]] = collections.deque(maxlen=limit)

    def add(self, at: float, value: float = 1.0) -> None:
        self._items.append((at, value))

    def trim(self, now: float) -> None:
        items = self._items
        while items and items[0][0] < now - self.span:
            items.popleft()

    def values(self, now: float) -> list[float]:
        self.trim(now)
        return [value for _, value in self._items]

    def total(self, now: float, since: float | None = None) -> float:
        """The sum of the values seen since ``since`` (default: the whole window)."""
        self.trim(now)
        return sum(value for at, value in self._items if since is None or at >= since)

    def first(self, now: float) -> tuple[float, float] | None:
        """The oldest (time, value) still in the window."""
        self.trim(now)
        return self._items[0] if self._items else None
