"""Publishing tasks: declare each queue once, publish with confirms, pipeline batches,
and ride out a broker that is down, restarting, blocked or (if asked) full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .backoff import Backoff
from .config import redact
from .broker import Broker, QueueSpec, connect_url
from .errors import BrokerError, ChannelClosed, ConnectionFailed, LoginRefused, QueueFull
from .message import Envelope

log = logging.getLogger("fairq.producer")

#: Confirms in flight during a batch send: measured to saturate the client (BENCHMARKS.md).
DEFAULT_WINDOW = 1000
#: Errors after which a fresh connection may succeed.
RECOVERABLE = (ConnectionFailed, ChannelClosed)


class Producer:
    """Owns one broker connection used only for publishing; lives on one event loop."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._broker: Broker | None = None
        self._declared: set[str] = set()
        self._lock: asyncio.Lock | None = None

    async def _ready(self, spec: QueueSpec) -> Broker:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._broker is None:
                broker = connect_url(self._url)
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
        new one (so one may arrive twice: at-least-once, never lost). Gives up with
        a fairq error once ``timeout`` seconds have passed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = list(envelopes)
        backoff = Backoff()
        announced = False
        while True:
            remaining = deadline - loop.time()
            try:
                broker = await asyncio.wait_for(self._ready(spec), max(remaining, 0.001))
                pending = await asyncio.wait_for(self._pipeline(broker, spec.name, pending, delay, window),
                                                 max(remaining, 0.001))
                if not pending:
                    if announced:
                        log.info("publishing to %s again", redact(self._url))
                    return len(envelopes)
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
                    log.warning("%s; reconnecting (send waits up to %.0f s)", exc, timeout)
                    announced = True
                failure = exc
            except asyncio.TimeoutError:
                blocked = self._broker is not None and self._broker.is_blocked()
                why = "the broker is blocking publishers (memory or disk alarm)" if blocked else "no confirm"
                raise BrokerError(f"send to {spec.name!r} gave up after {timeout:.0f} s: {why}") from None
            pause = backoff.next()
            if loop.time() + pause >= deadline:
                kind = ConnectionFailed if isinstance(failure, Unconfirmed) else type(failure)
                raise kind(f"send to {spec.name!r} gave up after {timeout:.0f} s: {failure}") from None
            await asyncio.sleep(pause)

    async def _pipeline(self, broker: Broker, queue: str, envelopes: Sequence[Envelope], delay: float,
                        window: int) -> list[Envelope]:
        """Publish all; return those the broker refused as full. A lost connection raises
        :class:`Unconfirmed` naming every message that was not confirmed."""
        slots = asyncio.Semaphore(window)
        confirmed: set[int] = set()
        refused: list[Envelope] = []
        lost: list[BaseException] = []
        failed: list[BaseException] = []

        async def one(envelope: Envelope) -> None:
            try:
                await broker.publish(queue, envelope, delay)
                confirmed.add(id(envelope))
            except QueueFull:
                refused.append(envelope)
            except RECOVERABLE as exc:
                lost.append(exc)
            except BaseException as exc:
                failed.append(exc)
            finally:
                slots.release()

        tasks: list[asyncio.Task[None]] = []
        try:
            for envelope in envelopes:
                await slots.acquire()
                if lost or failed:
                    slots.release()
                    break
                tasks.append(asyncio.ensure_future(one(envelope)))
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:  # gave up (timeout): take the publishes in flight with us
            for task in tasks:
                task.cancel()
            raise
        if failed:
            raise failed[0]
        if lost:
            raise Unconfirmed(lost[0], [e for e in envelopes if id(e) not in confirmed])
        return refused

    async def close(self) -> None:
        await self._drop()


class Unconfirmed(ConnectionFailed):
    """The connection was lost during a batch; ``unconfirmed`` must be published again."""

    def __init__(self, cause: BaseException, unconfirmed: list[Envelope]) -> None:
        super().__init__(str(cause))
        self.unconfirmed = unconfirmed
