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
- fair → deep in steps: at most ``FIRST_DEPTH`` per slot first, doubling as the window turns over;
- deep → shallower when the target falls to a quarter, deep → fair when the median turns long,
  at most every ``MIN_INTERVAL`` seconds;
- the depth never exceeds a quarter of the usual stretch between long tasks, so
  few windows hold a long task at all;
- *park* when every slot of a deep window runs a long task: the worker cancels its
  consumers, hands what waits in hand back (as copies) for idle workers, and
  consumes again, with the same window, once a slot frees.

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
#: Extra tasks a process holds beyond its slots never exceed this, however many slots share them
#: (they share one connection and one event loop too). A no-op drain still gains from 256 to 1,000
#: in hand (benchmarks/probe.py drain); the cap bounds a worker's memory at about this many messages.
MAX_EXTRA = 1024
#: Round trips' worth of work a deep window holds per slot. In a drain the idle round trip ``G`` (sampled
#: in a fair window) is not what credit waits for: acks go out in batches and the broker, on the same
#: cores, serves deep credit more cheaply. With 4, a no-op drain stopped at 500-800 (G 0.6 ms, S 5 µs), short
#: of MAX_EXTRA, which it still gains from (docs/adaptive-prefetch.md, rule 2).
HEADROOM = 16
#: Extra tasks per slot of the first deep window. It doubles (up to the target) each time it has
#: turned over GROW_AFTER times with the target at least 1.5× as deep.
FIRST_DEPTH = 64
GROW_AFTER = 2
#: Refill gaps needed before the first decision.
MIN_SAMPLES = 4
#: Task times the median ``S`` is taken over, and how often (in tasks) it is taken.
RECENT = 32
REFRESH = 4
#: Tasks in a row, each shorter than a round trip, before a fair window goes deep.
SHORT_RUN = 4
MIN_INTERVAL = 0.5
#: A deep window shrinks only when the target falls to 1/SHRINK of it.
SHRINK = 4
#: In a deep window, a task running this many times the median (and at least LONG_FLOOR s) is long.
LONG_FACTOR = 50.0
LONG_FLOOR = 0.05
#: Weight of one task in the running share of long tasks (a memory of about 1,000 tasks).
LONG_ALPHA = 1 / 1024
#: A deep window holds at most this many times the expected gap between long tasks: then about one
#: window in four holds a long task that may wait behind another.
LONG_RISK = 0.25


class AdaptiveWindow:
    """Tracks task times and the refill gap ``G`` for one worker process and picks its prefetch."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.window = slots
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.gap_seconds: float | None = None  #: G, running average
        self.gaps = 0
        self.short_run = 0  #: tasks in a row shorter than G
        self._long_ema = 0.0  # running average of "was long" (1 or 0), before the start-up correction
        self._finished = 0
        self._since_change = 0  # tasks finished since the window last changed
        self._observed = 0  # tasks counted as long or not
        self._median: float | None = None  # of ``recent``, refreshed every few tasks (a median is not free)
        self._long_after = LONG_FLOOR
        self._changed_at = float("-inf")

    @property
    def deep(self) -> bool:
        return self.window > self.slots

    @property
    def task_seconds(self) -> float | None:
        """S: the median of the recent task times (as of at most ``REFRESH - 1`` tasks ago)."""
        return self._median

    @property
    def long_share(self) -> float:
        """The share of long tasks among the last thousand or so finished ones.

        A running average started at zero would take a thousand tasks to believe what the first
        few hundred show; divided by the weight it has gathered so far, it is their plain mean.
        """
        if not self._observed:
            return 0.0
        return self._long_ema / (1.0 - (1.0 - LONG_ALPHA) ** self._observed)

    def _observe(self, long: bool) -> None:
        self._long_ema += LONG_ALPHA * ((1.0 if long else 0.0) - self._long_ema)
        self._observed += 1

    @property
    def long_after(self) -> float:
        """Run time past which a task counts as long: ``LONG_FACTOR`` × S, and at least ``LONG_FLOOR``."""
        return self._long_after

    def running_long(self) -> None:
        """A task still running has passed :attr:`long_after`: count it as long now, not when it ends
        (until then the window would go on deepening as if no long task were about)."""
        self._observe(True)

    def task_finished(self, seconds: float, counted: bool = False) -> None:
        """A task took ``seconds``; ``counted``: :meth:`running_long` already counted it as long.

        Any other task counts as short, whatever ``seconds`` says: a duration measured at its end
        includes any stall of the whole process (descheduled on a busy host, say), and one no-op
        stalled past :attr:`long_after` would cap the window as if long tasks were about. Only the
        worker's watchdog, on a tick that came on time, says that a task ran long.
        """
        if not counted:
            self._observe(False)
        self.recent.append(seconds)
        if self._finished % REFRESH == 0:
            self._median = statistics.median(self.recent)
            self._long_after = max(LONG_FLOOR, LONG_FACTOR * self._median)
        self._finished += 1
        self._since_change += 1
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
        return self._target()[0]

    def _target(self) -> tuple[int, bool]:
        """The target window, and whether the share of long tasks limited it."""
        s, g = self.task_seconds, self.gap_seconds
        if s is None or g is None or self.gaps < MIN_SAMPLES or s >= g:
            return self.slots, False
        depth = min(MAX_EXTRA // self.slots, math.ceil(HEADROOM * g / max(s, 1e-6)))
        if self.long_share > 0 and LONG_RISK / self.long_share < depth:
            # Long tasks among the short ones: hold few enough that a window rarely holds one.
            return self.slots * (1 + max(1, int(LONG_RISK / self.long_share))), True
        return self.slots * (1 + depth), False

    def decide(self, now: float) -> int | None:
        """A new window if it is time to change, else None (apply it, then call :meth:`changed`).

        A window deepens in steps: first to at most ``FIRST_DEPTH`` per slot, then doubling after
        each ``GROW_AFTER`` turnovers. Long tasks among the short ones show up within the first
        few hundred, and cap the depth before it hoards; without them the drain reaches full depth
        within about a thousand tasks.
        """
        if not self.deep:
            if self.short_run < SHORT_RUN:
                return None  # a fair window goes deep only on a run of short tasks: cheap to check per task
            target = self.target()
            return min(target, self.slots * (1 + FIRST_DEPTH)) if target > self.slots else None
        target, capped = self._target()
        if 2 * target >= 3 * self.window and self._since_change >= GROW_AFTER * self.window:
            return min(target, 2 * self.window)  # less than half as deep again is not worth a new consumer
        if now - self._changed_at < MIN_INTERVAL:
            return None
        if target == self.slots or (SHRINK * target <= self.window and (capped or self._holds_long())):
            return target
        # Deep already: shrink only when the target falls to a quarter, and (unless long tasks cap it)
        # only when a slot's window holds more than a long task's worth of work: each change costs
        # round trips, and the median of tiny tasks wavers by 2-4× with machine load.
        return None

    def _holds_long(self) -> bool:
        """Does a slot's share of the window hold more than :attr:`long_after` of work at the median?"""
        return (self.window / self.slots - 1) * (self._median or 0.0) > self._long_after

    def should_park(self, running_for: float) -> bool:
        """Every slot has run its task for ``running_for`` s or more: should this deep window stop
        taking work, and hand back what waits in it, until a slot frees?

        Yes once the tasks are long. What waits here would wait out the long tasks while other
        workers may idle, and the window would go on filling; a fair window holds nothing extra.
        """
        return self.deep and running_for > self._long_after

    def restarted(self, now: float) -> None:
        """A new session (after a lost one, perhaps on another node of a cluster): fair again, and the
        round trip measured afresh; what the tasks were like is still known."""
        self.changed(self.slots, now)
        self.gap_seconds = None
        self.gaps = 0

    def changed(self, window: int, now: float) -> None:
        """The worker now consumes with ``window``."""
        self.window = window
        self._changed_at = now
        self._since_change = 0
        self.short_run = 0
