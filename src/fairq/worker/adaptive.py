"""``--prefetch adaptive``: fair when tasks are long, deep enough to hide the broker's round trip when short.

A slot that finishes a task under ``fair`` waits one broker round trip (``G``,
the refill gap) for the next. When tasks take ``S`` seconds and ``S`` is well
above ``G`` that wait is noise and a window of one task per slot is both fair
and fast. When ``S`` is below ``G`` the slot idles more than it works; then
each slot needs about ``G / S`` tasks in hand to stay busy (RabbitMQ's own
guidance: prefetch ≈ round trip ÷ processing time).

Quorum queues fix a consumer's prefetch when it starts, so a change of window
means a new consumer (docs/adaptive-prefetch.md). Changes are rare: fair → deep
when tasks turn short, deep → deeper when the target doubles, deep → fair when
tasks turn long — at most every ``MIN_INTERVAL`` seconds, except the switch back
to fair when a long task shows up in a deep window, which is immediate (the
worker then hands its unstarted tasks back, so no other worker idles while they
wait behind the long one). A deep window never shrinks to a smaller deep one:
both are deep, and the churn would cost more than it could save.

This module is pure arithmetic; the worker feeds it measurements.
"""

from __future__ import annotations

import math

#: Weight of a new measurement in the running averages.
ALPHA = 0.2
#: A refill gap longer than this is an empty queue, not a round trip.
MAX_GAP = 0.05
#: Extra tasks per slot never exceed this.
MAX_DEPTH = 256
#: Refill gaps needed before the first decision.
MIN_SAMPLES = 8
MIN_INTERVAL = 0.5
#: In a deep window, a task running this many times the average (and at least LONG_FLOOR s) is long.
LONG_FACTOR = 50.0
LONG_FLOOR = 0.2


class AdaptiveWindow:
    """Tracks task time ``S`` and refill gap ``G`` for one worker process and picks its prefetch."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.window = slots
        self.task_seconds: float | None = None  #: S, running average
        self.gap_seconds: float | None = None  #: G, running average
        self.gaps = 0
        self._changed_at = float("-inf")

    @property
    def deep(self) -> bool:
        return self.window > self.slots

    def task_finished(self, seconds: float) -> None:
        s = self.task_seconds
        self.task_seconds = seconds if s is None else s + ALPHA * (seconds - s)

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
        depth = min(MAX_DEPTH, math.ceil(4 * g / max(s, 1e-6)))
        return self.slots * (1 + depth)

    def decide(self, now: float) -> int | None:
        """A new window if it is time to change, else None (apply it, then call :meth:`changed`)."""
        target = self.target()
        if now - self._changed_at < MIN_INTERVAL:
            return None
        if target > self.slots and self.window > self.slots and target < 2 * self.window:
            return None  # deep already: grow when the target doubles, never shrink a deep window (no gain)
        return None if target == self.window else target

    def is_long(self, running_for: float) -> bool:
        """In a deep window, has a task run long enough that its neighbours should go elsewhere?"""
        if not self.deep:
            return False
        return running_for > max(LONG_FLOOR, LONG_FACTOR * (self.task_seconds or 0.0))

    def changed(self, window: int, now: float) -> None:
        """The worker now consumes with ``window``."""
        self.window = window
        self._changed_at = now
