"""``--prefetch adaptive``: fair when tasks are long, deep enough to hide the broker's round trip when short.

A slot that finishes a task under ``fair`` waits one broker round trip (``G``,
the refill gap) for the next. When tasks take ``S`` seconds and ``S`` is well
above ``G`` that wait is noise and a window of one task per slot is both fair
and fast. When ``S`` is below ``G`` the slot idles more than it works; then
each slot needs about ``G / S`` tasks in hand to stay busy (RabbitMQ's own
guidance: prefetch ≈ round trip ÷ processing time).

``S`` is the *median* of recent task times, not their mean: one long task among
hundreds of short ones says nothing about the next short one, and a mean would
keep the window fair (and slow) for hundreds of tasks after it.

Quorum queues fix a consumer's prefetch when it starts, so a change of window
means a new consumer (docs/adaptive-prefetch.md). Changes are rare:

- fair → deep when the last few tasks were each shorter than a round trip;
- deep → deeper when the target doubles, deep → fair when the median turns long,
  at most every ``MIN_INTERVAL`` seconds; a deep window never shrinks to a smaller
  deep one (both are deep; the churn would cost more than it could save);
- *park* at once when every slot is busy with a long task while tasks wait in
  hand: the worker takes nothing more, hands the waiting tasks back for idle
  workers, and resumes with a fair window when a slot frees.

This module is pure arithmetic; the worker feeds it measurements.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

#: Weight of a new refill-gap measurement in its running average.
ALPHA = 0.2
#: A refill gap longer than this is an empty queue, not a round trip.
MAX_GAP = 0.05
#: Extra tasks per slot never exceed this.
MAX_DEPTH = 256
#: What a task costs the worker besides its own run time (decode, dispatch, ack): about 0.1 ms for a
#: no-op (8-10k tasks/s per process in BENCHMARKS.md). The depth counts it in, or a window of
#: no-ops would be sized as if they took no time at all, and hoard ten times more than it needs.
TASK_OVERHEAD = 0.0001
#: Refill gaps needed before the first decision.
MIN_SAMPLES = 8
#: Task times the median ``S`` is taken over.
RECENT = 32
#: Tasks in a row, each shorter than a round trip, before a fair window goes deep.
SHORT_RUN = 4
MIN_INTERVAL = 0.5
#: In a deep window, a task running this many times the median (and at least LONG_FLOOR s) is long.
LONG_FACTOR = 50.0
LONG_FLOOR = 0.1


class AdaptiveWindow:
    """Tracks task times and the refill gap ``G`` for one worker process and picks its prefetch."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.window = slots
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.gap_seconds: float | None = None  #: G, running average
        self.gaps = 0
        self.short_run = 0  #: tasks in a row shorter than G
        self._changed_at = float("-inf")

    @property
    def deep(self) -> bool:
        return self.window > self.slots

    @property
    def task_seconds(self) -> float | None:
        """S: the median of the recent task times."""
        return statistics.median(self.recent) if self.recent else None

    def task_finished(self, seconds: float) -> None:
        self.recent.append(seconds)
        g = self.gap_seconds
        self.short_run = self.short_run + 1 if g is not None and seconds < g else 0

    def refilled(self, gap: float) -> None:
        """A delivery arrived ``gap`` seconds after a slot freed credit with nothing in hand.

        Sampled in a fair window only: in a deep one, deliveries stream and a short gap
        says nothing about the round trip.
        """
        gap = min(gap, MAX_GAP)
        g = self.gap_seconds
        self.gap_seconds = gap if g is None else g + ALPHA * (gap - g)
        self.gaps += 1

    def target(self) -> int:
        """The window the measurements call for now."""
        s, g = self.task_seconds, self.gap_seconds
        if s is None or g is None or self.gaps < MIN_SAMPLES or s >= g:
            return self.slots
        depth = min(MAX_DEPTH, math.ceil(4 * g / (s + TASK_OVERHEAD)))
        return self.slots * (1 + depth)

    def decide(self, now: float) -> int | None:
        """A new window if it is time to change, else None (apply it, then call :meth:`changed`)."""
        if not self.deep:
            if self.short_run < SHORT_RUN:
                return None  # a fair window goes deep only on a run of short tasks: cheap to check per task
            target = self.target()
            return target if target > self.slots else None
        if now - self._changed_at < MIN_INTERVAL:
            return None
        target = self.target()
        if target == self.slots or target >= 2 * self.window:
            return target
        return None  # deep already: grow when the target doubles, never shrink a deep window (no gain)

    def is_long(self, running_for: float) -> bool:
        """In a deep window, has a task run long enough that tasks waiting behind it should go elsewhere?"""
        if not self.deep:
            return False
        return running_for > max(LONG_FLOOR, LONG_FACTOR * (self.task_seconds or 0.0))

    def changed(self, window: int, now: float) -> None:
        """The worker now consumes with ``window`` (``slots`` after parking: it resumes fair)."""
        self.window = window
        self._changed_at = now
        self.short_run = 0
