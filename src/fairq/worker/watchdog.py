"""The worker's watchdog: ticks only while work is held, for time limits, long-task notes and parking.

A sync task past its time limit cannot be interrupted (it is a thread): its wait ends
with TimeLimitExceeded and the process is replaced once its other tasks finish. An
async task's limit is ``asyncio.wait_for``'s (slots.py), not this. Under
``--prefetch adaptive`` a tick also tells the window about tasks running long and lets
it park (window.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..errors import TimeLimitExceeded
from .slots import Slots
from .window import WindowControl

if TYPE_CHECKING:
    from .worker import Worker

#: A watchdog tick this late means the whole process did not run meanwhile (a busy host): the time
#: its tasks have been running says nothing about them on that tick.
STALL = 0.01


class Watchdog:
    """Watches the running tasks every 0.1 s (0.02 s in a deep window) while the worker holds a delivery
    or is parked: an idle worker is not woken 10 to 50 times a second for nothing."""

    def __init__(self, worker: Worker, slots: Slots, window: WindowControl) -> None:
        self._worker = worker
        self._slots = slots
        self._window = window
        #: Time limits or an adaptive window to watch (set while the worker runs).
        self.watching = False
        self._tick: asyncio.TimerHandle | None = None

    def start(self, limits: bool) -> None:
        self.watching = limits or self._window.adaptive is not None

    def stop(self) -> None:
        self.watching = False
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def work_arrived(self) -> None:
        """A delivery is held: tick if not ticking yet."""
        if self._tick is None and self.watching:
            self._schedule()

    def _schedule(self) -> None:
        adaptive = self._window.adaptive
        interval = 0.02 if adaptive is not None and adaptive.deep else 0.1
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        self._tick = loop.call_at(due, self._watch, due)

    def _watch(self, due: float) -> None:
        """One tick. Long tasks are judged only on a tick that came on time (within ``STALL`` of
        ``due``): a late one means the whole process was held up, not its tasks."""
        self._tick = None
        window = self._window
        on_time = asyncio.get_running_loop().time() - due < STALL
        now = time.time()
        for record in self._slots.running():
            if record.sync and record.limit and now - record.started > record.limit:
                error = TimeLimitExceeded(f"{record.task} ran over its time limit of {record.limit:g} s")
                if self._slots.overrun(record, error):
                    self._worker.abandon_thread(record.task)
        if window.adaptive is not None and on_time:
            self._note_long_running(now)
            window.consider_parking()
        if window.parked and self._worker.ready.is_set() and self._slots.has_free():
            window.unpark()  # normally done as the slot frees; this catches a park that ended meanwhile
        if self.watching and (window.held or window.parked):
            self._schedule()

    def _note_long_running(self, now: float) -> None:
        """Tell the window about tasks running past its threshold, once each, while they still run."""
        adaptive = self._window.adaptive
        assert adaptive is not None
        long_after = adaptive.long_after
        for record in self._slots.running():
            if not record.noted_long and record.started and now - record.started > long_after:
                record.noted_long = True
                adaptive.running_long()
