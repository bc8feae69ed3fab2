"""The worker's prefetch window under ``--prefetch adaptive``: follow the window arithmetic (adaptive.py).

Quorum queues fix a consumer's prefetch when it starts, so a change of window means
new consumers (:meth:`WindowControl.adapt` → :meth:`WindowControl.reconsume`). When
every slot of a deep window runs a long task and the queues are short, the worker
*parks*: it retires its consumers, hands what waits here back (copies, at the back of
the queue) for idle workers, and consumes again once a slot frees. Under the other
policies the window is fixed and this only counts deliveries in hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..errors import BrokerError
from .adaptive import AdaptiveWindow
from .policy import Prefetch
from .slots import Running, Slots

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("fairq.worker")

#: How often a worker whose slots all run long tasks asks how much its queues hold (a passive declare).
PARK_POLL = 0.05


class WindowControl:
    """How many deliveries the worker's consumers may hold, and changing it."""

    def __init__(self, worker: Worker, slots: Slots, prefetch: Prefetch) -> None:
        self._worker = worker
        self._slots = slots
        #: ``--prefetch adaptive``: the window logic, fed with task times and refill gaps.
        self.adaptive = AdaptiveWindow(slots.count) if prefetch.policy == "adaptive" else None
        self.window = prefetch.count(slots.count)
        self.held = 0  # deliveries handed to the pipeline and not yet settled
        self._credit_at: float | None = None  # when a slot freed credit with nothing in hand
        self.reconsuming = False
        #: Every slot runs a long task, so the consumers are retired and what waited here went back to
        #: the queue; consume again once a slot frees (:meth:`park`).
        self.parked = False
        self.checking_queues = False  # park_once_queues_short is running

    # -- deliveries in hand ----------------------------------------------------------------

    def arrived(self) -> None:
        """A delivery reached the worker: the refill gap, if a slot was waiting for it."""
        if self.adaptive is not None and self._credit_at is not None:
            if not self.adaptive.deep:
                self.adaptive.refilled(time.monotonic() - self._credit_at)
            self._credit_at = None
        self.held += 1

    def settled(self) -> None:
        """A delivery is settled. Refill gaps are sampled in a fair window only: there each one is a full
        broker round trip."""
        self.held -= 1
        if self.adaptive is not None and not self.adaptive.deep and self._credit_at is None and self.starving():
            self._credit_at = time.monotonic()

    def starving(self) -> bool:
        """A slot is free, nothing waits to start, and the window has room: the broker owes us a task."""
        return self.held < self.window and self._slots.waiting == 0 and self._slots.has_free()

    def measured(self, record: Running) -> None:
        """A task's run ended: feed its time to the adaptive window, and follow it if it asks for a change.

        Called by the pipeline directly, not through the hooks: the window steers, hooks only watch."""
        if self.adaptive is not None and record.started:
            self.adaptive.task_finished((record.ended or time.time()) - record.started, record.noted_long)
            window = None if self.reconsuming else self.adaptive.decide(time.monotonic())
            if window is not None and window != self.window:
                self.adapt(window)  # consumes again if parked
            else:
                self.unpark()  # a slot is free: consume again if parked

    def restart(self, prefetch: Prefetch) -> None:
        """A lost session: the next one consumes afresh, with the policy's first window (``adaptive``:
        fair, its round trip measured again, for it may be on another node)."""
        self.parked = False
        self._credit_at = None
        self.window = prefetch.count(self._slots.count)
        if self.adaptive is not None:
            self.adaptive.restarted(time.monotonic())

    # -- changing the window ---------------------------------------------------------------

    def adapt(self, window: int) -> None:
        """Replace the consumers by ones with prefetch ``window`` (quorum queues fix it per consumer)."""
        if self.reconsuming or not self._worker.running or window == self.window:
            return
        if self.adaptive is not None:
            self.adaptive.changed(window, time.monotonic())
        self.reconsuming = True
        deeper = window > self.window and not self.parked
        self.window = window
        if window == self._slots.count:
            # Back to fair: tasks turned long, so what waits here would wait long; it goes back to the
            # queue (as fresh copies) for idle workers. A smaller deep window keeps its short tasks: a
            # copy waits at the back of the queue, behind work sent after it.
            self._slots.give_back(republish=True)
        asyncio.ensure_future(self.reconsume(window, deeper))

    async def reconsume(self, window: int, deeper: bool = False) -> None:
        """Replace each consumer by one with prefetch ``window``. ``deeper``: start the new one first, so
        deliveries never stop (the old one's tasks are short, and it is retired a few round trips later);
        otherwise retire first, so a shallower window never holds more than before."""
        worker = self._worker
        self.parked = False
        try:
            for index, spec in enumerate(worker.queues):
                old = worker.consumers[index]
                if not deeper:
                    await old.retire()  # nothing to do for a parked worker's, retired already
                worker.consumers[index] = await worker.broker.consume(spec.name, window, worker._on_delivery)
                if deeper:
                    await old.retire()
            log.info("%s: adaptive prefetch → %d (task %.2g s, refill gap %.2g s)", worker.name, window,
                     (self.adaptive.task_seconds or 0) if self.adaptive else 0,
                     (self.adaptive.gap_seconds or 0) if self.adaptive else 0)
        except BrokerError as exc:
            # Some consumers may be retired with no successor: parked, so the watchdog tries again once a
            # slot is free (a lost connection instead ends the session, and the next one consumes afresh).
            self.parked = True
            log.warning("%s: changing prefetch failed: %s", worker.name, exc)
        finally:
            self.reconsuming = False

    # -- parking ---------------------------------------------------------------------------

    def all_slots_long(self) -> bool:
        assert self.adaptive is not None
        started = [r.started for r in self._slots.running()]
        return len(started) >= self._slots.count and self.adaptive.should_park(time.time() - max(started))

    def consider_parking(self) -> None:
        """On a watchdog tick that came on time: park if every slot of a deep window runs a long task."""
        if (self.adaptive is not None and self.adaptive.deep and not self.parked and not self.reconsuming
                and not self.checking_queues and self.all_slots_long()):
            self.checking_queues = True
            asyncio.ensure_future(self.park_once_queues_short())

    async def park_once_queues_short(self) -> None:
        """Every slot runs a long task. While the queues hold more than a window's worth, this full window
        is a fixed prefetch: the other workers have the backlog, and what waits here would wait longer at
        its back. Once they hold less (a window is sized to last a few round trips), a copy at the back
        is soon taken, and other workers may idle while tasks wait here: park."""
        worker = self._worker
        try:
            while worker.running and not self.parked and self.all_slots_long():
                try:
                    ready = sum(stats.ready for stats in [await worker.broker.stats(spec.name)
                                                          for spec in worker.queues] if stats is not None)
                except BrokerError:
                    return  # the session watch reconnects
                if ready <= self.window and not self.reconsuming and self.all_slots_long():
                    self.park()
                    return
                await asyncio.sleep(PARK_POLL)
        finally:
            self.checking_queues = False

    def park(self) -> None:
        """Stop consuming, and hand what waits here back to the queue (copies, at its back) for idle
        workers; :meth:`measured` consumes again once a slot frees.

        Cancelling is the only way to stop a quorum consumer's deliveries short of filling its window,
        and costs two round trips: nothing next to a task that has already run this long.
        """
        self.parked = True
        self.reconsuming = True
        log.info("%s: adaptive: every slot runs a long task and the queue is short; parking", self._worker.name)
        asyncio.ensure_future(self._park_consumers())

    async def _park_consumers(self) -> None:
        try:
            for consumer in self._worker.consumers:
                await consumer.retire()
        except BrokerError as exc:
            log.warning("%s: parking failed: %s", self._worker.name, exc)  # the session watch reconnects
            return
        finally:
            self.reconsuming = False
        self._slots.give_back(republish=True, once=True)  # the queue is short: a worker elsewhere may idle
        if self.parked and self._slots.has_free():  # a task finished while the cancel was on its way
            self.unpark()

    def unpark(self) -> None:
        if self.parked and not self.reconsuming and self._worker.running:
            self.reconsuming = True
            asyncio.ensure_future(self.reconsume(self.window))
