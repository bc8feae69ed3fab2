"""One worker process's engine: sessions on a backend, reconnects, stop and abort, the shutdown order.

The parts, one job each: slots.py runs tasks, pipeline.py handles one delivery (and
fires the hooks, hooks.py), window.py sizes the prefetch window, watchdog.py watches
time limits and long tasks. Acks are sent from the event loop, which owns the
connection; sync tasks run on threads and hand their outcome back to it. A lost
connection is re-established with backoff on a fresh broker from the same backend.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..backoff import Backoff
from ..broker import Backend, Broker, Consumer, Delivery, QueueSpec
from ..config import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_MESSAGE_BYTES
from ..errors import BrokerError, ConsumerTimedOut, LoginRefused
from ..events.emitter import EventOptions, emitter_for
from ..logs import BANNER
from ..task import Task
from . import tasklog
from .adaptive import AdaptiveWindow
from .context import current_worker
from .hooks import Hooks, Subscriber
from .pipeline import Pipeline
from .replies import Replies
from .policy import DEFAULT_POLICY, Prefetch
from .slots import Slots
from .snapshot import TaskCounter, WorkerSnapshot, take
from .watchdog import Watchdog
from .window import WindowControl

__all__ = ["RawHandler", "State", "Worker", "current_worker"]

log = logging.getLogger("fairq.worker")

RawHandler = Callable[[bytes], Any]


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # no new tasks; running ones get a grace period
    ABORTING = "aborting"  # drop everything; the broker redelivers what was unacked


class Worker:
    """Consumes ``queues`` of ``backend`` with ``threads`` task slots until :meth:`stop` or :meth:`abort`.

    ``hooks``: a :class:`~fairq.worker.hooks.Hooks` or subscriber callables; more can subscribe
    through :attr:`hooks` before :meth:`run`. ``events``: emit task and worker events on the backend's
    event channel (docs/events.md); :class:`~fairq.events.EventOptions` to set the process number,
    heartbeat interval...; False for none.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        queues: Sequence[QueueSpec],
        tasks: Mapping[str, Task[Any, Any]],
        name: str,
        threads: int = 1,
        prefetch: Prefetch = Prefetch(DEFAULT_POLICY),
        raw_handler: RawHandler | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        grace_seconds: float = 30.0,
        hooks: Hooks | Iterable[Subscriber] | None = None,
        rng: Callable[[float, float], float] = random.uniform,
        events: bool | EventOptions = True,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.name = name
        self.queues = list(queues)
        self.tasks = tasks
        self.threads = threads
        self.prefetch = prefetch
        self.raw_handler = raw_handler
        self.max_message_bytes = max_message_bytes
        self.delivery_limit = delivery_limit
        self.grace_seconds = grace_seconds
        self.rng = rng
        self.backend = backend
        self.broker: Broker = backend.broker()
        self.state = State.RUNNING
        #: Set when a sync task overran its time limit: its thread cannot be stopped, so the process must go.
        self.recycle = False
        #: Set once every consumer is registered with the broker (again after each reconnect).
        self.ready = asyncio.Event()
        self.consumers: list[Consumer] = []
        self.hooks = hooks if isinstance(hooks, Hooks) else Hooks(hooks or ())
        tasklog.subscribe(self.hooks)
        self._counter = TaskCounter()
        self._counter.attach(self.hooks)
        self.slots = Slots(threads, name)
        self.window = WindowControl(self, self.slots, prefetch)
        self.watchdog = Watchdog(self, self.slots, self.window)
        self.pipeline = Pipeline(self, self.slots, self.window, self.hooks)
        #: Results for the callers that asked for them (replies.py).
        self.replies = Replies(self)
        self._handling: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self.events = emitter_for(self, events)

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    @property
    def adaptive(self) -> AdaptiveWindow | None:
        """The adaptive window's arithmetic, None under the other policies."""
        return self.window.adaptive

    @property
    def duplicates_suppressed(self) -> int:
        """Redeliveries settled with the result of a run here instead of running again (duplicates.py)."""
        return self.pipeline.duplicates_suppressed

    def snapshot(self) -> WorkerSnapshot:
        """What this worker is doing now: running tasks, held-not-started, window, counters (snapshot.py)."""
        return take(self, self._counter)

    # -- control (call on the worker's loop) ----------------------------------------------

    def stop(self) -> None:
        """Graceful: take nothing new, hand back unstarted tasks, let running ones finish.

        A second call aborts."""
        self.state = State.STOPPING if self.state is State.RUNNING else State.ABORTING
        if self._wake is not None:
            self._wake.set()

    def abort(self) -> None:
        """Stop now; unfinished tasks are redelivered elsewhere by the broker."""
        self.state = State.ABORTING
        if self._wake is not None:
            self._wake.set()

    def abandon_thread(self, label: str) -> None:
        """A sync task overran its limit: its thread cannot be killed, so this process is replaced."""
        log.error("%s: %s overran its time limit; its thread cannot be stopped, so this worker process "
                  "finishes its other tasks and is replaced", self.name, label)
        self.recycle = True
        if self.state is State.RUNNING:
            self.stop()

    # -- sessions ------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped, reconnecting after losses. Raises LoginRefused if credentials are wrong."""
        self._wake = asyncio.Event()
        self.slots.open()
        self.watchdog.start(any(t.time_limit for t in self.tasks.values()))
        if self.events is not None:
            self.events.start()
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._open()
                    backoff.reset()
                    lost = await self._serve()
                except LoginRefused:
                    raise
                except BrokerError as exc:
                    lost = exc
                if lost is None or self.state is not State.RUNNING:
                    return
                await self._discard_session(lost)
                pause = backoff.next()
                if pause:
                    log.warning("%s: reconnecting to %s in %.1f s", self.name, self.broker.display_url, pause)
                if not await self._pause(pause):
                    return
        finally:
            self.watchdog.stop()
            self.slots.close()
            if self.events is not None:
                await self.events.close()  # offline, and the last events, before the connection goes
            await self.replies.close()
            await self.broker.close()

    async def _open(self) -> None:
        await self.broker.connect()
        for spec in self.queues:
            await self.broker.declare(spec)
        count = self.window.window
        for spec in self.queues:
            self.consumers.append(await self.broker.consume(spec.name, count, self._on_delivery))
        BANNER.info("%s consuming %s (threads=%d, prefetch=%s → %s) from %s", self.name,
                    ", ".join(q.name for q in self.queues), self.threads, self.prefetch, count or "no cap",
                    self.broker.display_url)
        self.ready.set()

    async def _serve(self) -> BaseException | None:
        """Wait for a stop (then shut down in order, return None) or a loss (return its cause)."""
        assert self._wake is not None
        lost = asyncio.ensure_future(self.broker.wait_lost())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waker, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not lost.done():
                lost.cancel()
        if self.state is State.RUNNING and lost.done():
            return lost.result()
        await self._shutdown()
        return None

    async def _discard_session(self, cause: BaseException) -> None:
        """Forget a dead connection (its unacked deliveries are back in the queue already) and make a
        fresh broker on the backend for the next session."""
        self.ready.clear()
        if isinstance(cause, ConsumerTimedOut):
            log.error("%s: %s", self.name, cause.advice or cause)
        else:
            log.warning("%s: lost the broker: %s", self.name, cause)
        self.consumers.clear()
        self.window.restart(self.prefetch)  # the next session consumes afresh, fair under adaptive
        self.slots.give_back()  # their deliveries died with the channel: the broker has them again
        await self.broker.close()
        self.broker = self.backend.broker()

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if still running."""
        assert self._wake is not None
        if seconds > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        return self.state is State.RUNNING

    async def _shutdown(self) -> None:
        assert self._wake is not None
        # Stop taking work first, then return what was prefetched, then wait for the running tasks:
        # the connection stays open all along, so heartbeats go on and acks can still be sent.
        for consumer in self.consumers:
            try:
                await consumer.cancel()
            except BrokerError as exc:
                log.warning("%s: cancelling consumer: %s", self.name, exc)
        self.slots.give_back()
        if self._handling and self.state is State.STOPPING:
            log.info("%s: waiting up to %.0f s for %d running task(s)", self.name, self.grace_seconds,
                     len(self._handling))
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            running = asyncio.ensure_future(asyncio.wait(set(self._handling)))
            await asyncio.wait({waker, running}, timeout=self.grace_seconds, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            running.cancel()
        if self._handling:
            log.warning("%s: aborting %d unfinished task(s); the broker will redeliver them", self.name,
                        len(self._handling))

    # -- deliveries ----------------------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery) -> None:
        if self.state is not State.RUNNING:
            await delivery.requeue()
            return
        self.window.arrived()
        self.watchdog.work_arrived()
        # Its own task, not the backend's: a backend may cancel its delivery tasks when a channel
        # closes, and a running task's result must outlive its channel.
        task = asyncio.ensure_future(self.pipeline.handle(delivery))
        self._handling.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._handling.discard(task)
        self.window.settled()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: internal error settling a delivery", self.name, exc_info=task.exception())
