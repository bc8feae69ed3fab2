"""Figures computed from a run's events, and the yardsticks they are judged by (PRODUCT.md)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from fairq.demo.yardsticks import ideal_greedy, lower_bound

from .events import Event


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def span(events: Sequence[Event]) -> float:
    """First task start to last task end."""
    return max(e.end for e in events) - min(e.start for e in events)


def throughput(events: Sequence[Event]) -> float:
    """Tasks per second over first start → last end."""
    return len(events) / span(events)


def latencies_ms(events: Sequence[Event]) -> list[float]:
    """Send → start of each task, in milliseconds."""
    return [(e.start - e.sent) * 1000 for e in events]


def dispatch(events: Sequence[Event], slots: int) -> dict[str, float | dict[str, float]]:
    """Makespan against the ideal greedy schedule and the lower bound, from measured durations in send order."""
    durations = [e.seconds for e in sorted(events, key=lambda e: e.i)]
    makespan = span(events)
    greedy = ideal_greedy(durations, slots)
    bound = lower_bound(durations, slots)
    busy: dict[int, float] = defaultdict(float)
    for e in events:
        busy[e.pid] += e.seconds
    return {
        "makespan_s": makespan,
        "ideal_greedy_s": greedy,
        "lower_bound_s": bound,
        "vs_ideal_greedy": makespan / greedy,
        "vs_lower_bound": makespan / bound,
        "busy_s_per_process": {str(pid): round(s, 3) for pid, s in sorted(busy.items())},
    }
