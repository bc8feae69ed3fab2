"""How a dispatch run is judged (PRODUCT.md): lower bound and ideal greedy schedule."""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def lower_bound(durations: Sequence[float], slots: int) -> float:
    """max(total work / slots, longest task): no dispatcher can finish sooner."""
    if not durations:
        return 0.0
    return max(sum(durations) / slots, max(durations))


def ideal_greedy(durations: Sequence[float], slots: int) -> float:
    """Makespan when each task, in send order, starts on the first free slot, with zero overhead."""
    free_at = [0.0] * slots
    heapq.heapify(free_at)
    end = 0.0
    for d in durations:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + d)
        end = max(end, start + d)
    return end
