"""Publishing tasks: declare each queue once, publish with confirms, pipeline batches,
and ride out a broker that is down, restarting, blocked or (if asked) full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from .backoff import Backoff
from .broker import Backend, Broker, QueueSpec
from .errors import BrokerError, ChannelClosed, ConnectionFailed, LoginRefused, QueueFull
from .message import Envelope

log = logging.getLogger("fairq.producer")

#: Confirms in flight during a batch send: measured to saturate the client (BENCHMARKS.md).
DEFAULT_WINDOW = 1000
#: Errors after which a fresh connection may succeed.
RECOVERABLE = (ConnectionFailed, ChannelClosed)

# What became of each message of a pass (a bytearray, one byte per message).
_OPEN, _CONFIRMED, _REFUSED = 0, 1, 2


class Producer:
    """Owns one broker connection used only for publishing; lives on one event loop.

    Handed a backend, not a URL, so it can publish into an in-process store (``memory://``)
    that a worker in the same process consumes from; it asks the backend for a new
    connection at first use and again after each loss.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._broker: Broker | None = None
        self._declared: set[str] = set()
        self._lock: asyncio.Lock | None = None

    async def _ready(self, spec: QueueSpec) -> Broker:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._broker is None:
                broker = self.backend.broker()
                await broker.connect()
                self._broker = broker
            if spec.name not in self._declared:
                await self._broker.declare(spec)
                self._declared.add(spec.name)
        return self._broker

    async def _drop(self) -> None:
        broker, self._broker = self._broker, None
        self._declared.clear()
        if broker is not None:
            await broker.close()

    async def publish(self, spec: QueueSpec, envelope: Envelope, *, delay: float = 0.0, wait_if_full: bool = False,
                      timeout: float = 30.0) -> None:
        """Publish one message and wait for its confirm, retrying through outages for up to ``timeout`` s."""
        await self.publish_many(spec, [envelope], delay=delay, wait_if_full=wait_if_full, timeout=timeout)

    async def publish_many(self, spec: QueueSpec, envelopes: Sequence[Envelope], *, delay: float = 0.0,
                           window: int = DEFAULT_WINDOW, wait_if_full: bool = False, timeout: float = 30.0) -> int:
        """Publish with up to ``window`` confirms outstanding; returns once every message is confirmed.

        After a lost connection the unconfirmed messages are published again on a
        new one (so one may arrive twice: at-least-once, never lost).

        ``timeout`` bounds the time without progress, not the whole batch: it gives
        up with a fairq error once ``timeout`` seconds pass in which the broker
        confirmed none of the batch's messages (it is down, blocked, not answering,
        or full while ``wait_if_full``). Every confirm starts that clock again, so a
        batch of any size finishes as long as it keeps moving. For one message it
        is simply the longest wait.
        """
        loop = asyncio.get_running_loop()
        progress = _Progress(loop, timeout)
        pending = list(envelopes)
        backoff = Backoff()
        announced = False
        while True:
            try:
                broker = self._broker
                if broker is None or spec.name not in self._declared:  # else skip wait_for's task: a loop turn
                    broker = await asyncio.wait_for(self._ready(spec), max(progress.left(), 0.001))
                refused = await _Pass(broker, spec.name, pending, delay, window, progress).run()
                if not refused:
                    if announced:
                        log.info("publishing to %s again", self.backend.display_url)
                    return len(envelopes)
                pending = refused
                raise QueueFull(f"queue {spec.name!r} is full: {len(envelopes) - len(pending)} of {len(envelopes)} "
                                "accepted" + (f" (max_length {spec.max_length})" if spec.max_length else ""))
            except LoginRefused:
                raise
            except QueueFull as exc:
                if not wait_if_full:
                    raise
                failure: BrokerError = exc
            except RECOVERABLE as exc:
                if isinstance(exc, Unconfirmed):
                    pending = exc.unconfirmed
                await self._drop()
                if not announced:
                    log.warning("%s; reconnecting (send waits up to %.0f s without progress)", exc, timeout)
                    announced = True
                failure = exc
            except (asyncio.TimeoutError, Stalled):
                blocked = self._broker is not None and self._broker.is_blocked()
                why = "the broker is blocking publishers (memory or disk alarm)" if blocked else "no confirm"
                raise BrokerError(f"send to {spec.name!r} gave up after {timeout:.0f} s without progress: {why}") from None
            pause = backoff.next()
            if loop.time() + pause >= progress.deadline():
                kind = ConnectionFailed if isinstance(failure, Unconfirmed) else type(failure)
                raise kind(f"send to {spec.name!r} gave up after {timeout:.0f} s without progress: {failure}") from None
            await asyncio.sleep(pause)

    async def close(self) -> None:
        await self._drop()


class _Progress:
    """When the batch last moved (its last confirm), and so when it gives up."""

    __slots__ = ("loop", "timeout", "last")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.last = loop.time()

    def deadline(self) -> float:
        return self.last + self.timeout

    def left(self) -> float:
        return self.last + self.timeout - self.loop.time()


class _Pass:
    """One pass of a batch over one connection.

    One coroutine issues the publishes, keeping at most ``window`` unconfirmed;
    each publish reports its end through a callback (no wrapper task, no semaphore).
    The pass ends when every message is confirmed or refused as full; on a lost
    connection it raises :class:`Unconfirmed`, and when nothing was confirmed for
    the timeout, :class:`Stalled`. Either way no publish of it is left running.
    """

    def __init__(self, broker: Broker, queue: str, envelopes: Sequence[Envelope], delay: float, window: int,
                 progress: _Progress) -> None:
        self.broker = broker
        self.queue = queue
        self.envelopes = envelopes
        self.delay = delay
        self.window = max(1, window)
        self.progress = progress
        self.loop = progress.loop
        self.state = bytearray(len(envelopes))
        self.in_flight: dict[int, asyncio.Future[Any]] = {}
        self.trouble: BaseException | None = None  # the first error other than a refusal
        self.stalled = False
        self.waiter: asyncio.Future[None] | None = None
        self.limit = self.window  # the waiter wakes once fewer than this many are in flight
        self._timer: asyncio.TimerHandle | None = None

    def _settle(self, index: int, error: BaseException | None) -> None:
        """A publish ended (called by the broker from the loop)."""
        self.in_flight.pop(index, None)
        if error is None:
            self.state[index] = _CONFIRMED
            self.progress.last = self.loop.time()
        elif isinstance(error, QueueFull):
            self.state[index] = _REFUSED
        elif self.trouble is None and not isinstance(error, asyncio.CancelledError):
            self.trouble = error
        waiter = self.waiter
        if waiter is not None and not waiter.done() and (len(self.in_flight) < self.limit or self.trouble):
            waiter.set_result(None)

    def _watch(self) -> None:
        """The stall watchdog: wakes the pass once no confirm came for the timeout."""
        due = self.progress.deadline()
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._watch)
            return
        self.stalled = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _wait(self, limit: int) -> None:
        """Until fewer than ``limit`` publishes are in flight, or trouble, or a stall."""
        self.limit = limit
        while len(self.in_flight) >= limit and self.trouble is None and not self.stalled:
            self.waiter = self.loop.create_future()
            await self.waiter

    async def run(self) -> list[Envelope]:
        """Publish all; return those the broker refused as full."""
        self._timer = self.loop.call_at(self.progress.deadline(), self._watch)
        in_flight, window, publish, settle = self.in_flight, self.window, self.broker.publish_nowait, self._settle
        queue, delay = self.queue, self.delay
        try:
            for index, envelope in enumerate(self.envelopes):
                if len(in_flight) >= window:
                    await self._wait(window)
                if self.trouble is not None or self.stalled:
                    break
                in_flight[index] = publish(queue, envelope, delay, settle, index)
            await self._wait(1)  # the last confirms
        finally:
            self._timer.cancel()
            if in_flight:  # an error, a stall or cancellation: end what is still in flight, and wait for it
                futures = list(in_flight.values())
                for future in futures:
                    future.cancel()
                await asyncio.wait(futures)
        if self.trouble is not None:
            if isinstance(self.trouble, RECOVERABLE):
                unconfirmed = [e for e, s in zip(self.envelopes, self.state) if s != _CONFIRMED]
                raise Unconfirmed(self.trouble, unconfirmed)
            raise self.trouble
        if self.stalled:
            raise Stalled()
        return [e for e, s in zip(self.envelopes, self.state) if s == _REFUSED]


class Stalled(Exception):
    """No message of a batch was confirmed for the timeout (internal to the producer)."""


class Unconfirmed(ConnectionFailed):
    """The connection was lost during a batch; ``unconfirmed`` must be published again."""

    def __init__(self, cause: BaseException, unconfirmed: list[Envelope]) -> None:
        super().__init__(str(cause))
        self.unconfirmed = unconfirmed
