"""Listening to workers' events: what ``fairq events``, ``fairq status``, ``fairq top`` and the dashboard read.

    async with listen(backend, ["task.#"]) as events:
        async for event in events:
            ...

A listener subscribes on the backend's event channel (on RabbitMQ, its own exclusive,
bounded queue bound to the ``fairq.events`` exchange; gone when the listener goes), decodes
each batch, and keeps the events in a bounded backlog for whoever reads them. It never
crashes on what it cannot read: a batch of another format version or not events at all is
counted in :attr:`ListenerStats.undecodable` (its reason in :attr:`EventStream.problem`, and
logged once), a kind this fairq does not know in ``skipped``. It rides out a lost broker by
reconnecting with backoff (:attr:`EventStream.connected` says whether it is connected now);
events sent meanwhile are not seen, and a late listener sees what happens from now on: every
live worker's next heartbeat within one interval.

:class:`EventFeed` is the same for synchronous code, on a private loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from ..backoff import Backoff
from ..broker import Backend, Broker, open_backend
from ..broker.base import EventSubscription
from ..broker.topic import check
from ..errors import BrokerError, EventFormatError, LoginRefused, UnknownEventKind
from ..loopthread import LoopThread
from .codec import decode_batch
from .model import Event

__all__ = ["DEFAULT_BACKLOG", "EventFeed", "EventStream", "ListenerStats", "listen", "listen_sync"]

log = logging.getLogger("fairq.events")

#: Events a listener keeps for its reader before the oldest go.
DEFAULT_BACKLOG = 50_000


@dataclass
class ListenerStats:
    """What a listener received and what it could not use (all since it started)."""

    batches: int = 0  #: batches received
    events: int = 0  #: events decoded from them
    undecodable: int = 0  #: batches it could not read (another format version, not events)
    skipped: int = 0  #: batches of a kind this fairq does not know (a newer worker's)
    dropped: int = 0  #: events its reader did not take in time (the backlog was full): the oldest go
    missed: int = 0  #: batches it knows the backend or the workers lost (gaps; only when listening to "#")
    reconnects: int = 0


def _as_backend(backend: Backend | str) -> Backend:
    return open_backend(backend) if isinstance(backend, str) else backend


class EventStream:
    """An async iterator of the events matching ``patterns`` (AMQP topic patterns; ``#``: all).

    ``require_broker``: entering fails if the broker cannot be reached (ConnectionFailed); False to
    start anyway and connect when it answers (``connected`` is False meanwhile). Refused credentials
    always fail (LoginRefused): retrying will not help.
    """

    def __init__(self, backend: Backend | str, patterns: Sequence[str] = ("#",), *, backlog: int = DEFAULT_BACKLOG,
                 require_broker: bool = True) -> None:
        self.backend = _as_backend(backend)
        self.patterns = [check(p) for p in patterns] or ["#"]
        self.backlog = backlog
        self.require_broker = require_broker
        self.stats = ListenerStats()
        #: Connected and subscribed now.
        self.connected = False
        #: Why it is not connected, or what the last unreadable batch was; None when all is well.
        self.problem: str | None = None
        self._pending: collections.deque[Event] = collections.deque()
        self._arrived = asyncio.Event()
        self._broker: Broker | None = None
        self._subscription: EventSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._seqs: dict[tuple[str, int], int] = {}
        self._logged: set[str] = set()

    async def __aenter__(self) -> EventStream:
        if self.require_broker:
            await self._connect()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Unsubscribe and disconnect; iteration ends."""
        self._closed = True
        self._arrived.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._disconnect()

    # -- reading ---------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        return self._pending.popleft()

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds (or the stream is closed)."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (asyncio.TimeoutError, StopAsyncIteration):
            return None

    def take(self) -> list[Event]:
        """Every event waiting now, without waiting (for readers that redraw on a timer)."""
        events = list(self._pending)
        self._pending.clear()
        return events

    # -- the session -----------------------------------------------------------------------------

    async def _connect(self) -> None:
        broker = self.backend.broker()
        try:
            await broker.connect()
            self._subscription = await broker.subscribe_events(self.patterns, self._on_batch)
        except BaseException:
            await broker.close()
            raise
        self._broker = broker
        self.connected = True
        self.problem = None
        self._seqs.clear()  # batches sent while away are not gaps to count

    async def _disconnect(self) -> None:
        self.connected = False
        broker, subscription = self._broker, self._subscription
        self._broker = self._subscription = None
        try:
            if subscription is not None:
                await subscription.cancel()
        except BrokerError:
            pass
        if broker is not None:
            await broker.close()

    async def _run(self) -> None:
        backoff = Backoff(cap=5.0)
        while not self._closed:
            if self._broker is None:
                try:
                    await self._connect()
                    backoff.reset()
                except LoginRefused as exc:
                    self.problem = str(exc)
                    log.error("event listener: %s", exc)
                    return
                except BrokerError as exc:
                    self.problem = str(exc)
                    await asyncio.sleep(backoff.next() or 0.25)
                    continue
            assert self._broker is not None
            cause = await self._broker.wait_lost()
            self.problem = f"lost the broker: {cause}"
            log.warning("event listener: %s; reconnecting", self.problem)
            self.stats.reconnects += 1
            await self._disconnect()

    def _on_batch(self, key: str, body: bytes) -> None:
        stats = self.stats
        stats.batches += 1
        try:
            batch = decode_batch(body)
        except UnknownEventKind:
            stats.skipped += 1
            return
        except EventFormatError as exc:
            stats.undecodable += 1
            self.problem = str(exc)
            if self.problem not in self._logged and len(self._logged) < 100:
                self._logged.add(self.problem)
                log.warning("event listener: skipped %s", exc)
            return
        if self.patterns == ["#"]:
            ident = (batch.worker, batch.process)
            last = self._seqs.get(ident)
            if last is not None and batch.seq > last + 1:
                stats.missed += batch.seq - last - 1
            self._seqs[ident] = batch.seq
        stats.events += len(batch.events)
        pending = self._pending
        for event in batch.events:
            if len(pending) >= self.backlog:
                pending.popleft()
                stats.dropped += 1
            pending.append(event)
        self._arrived.set()


def listen(backend: Backend | str, patterns: Sequence[str] = ("#",), *, backlog: int = DEFAULT_BACKLOG,
           require_broker: bool = True) -> EventStream:
    """The events of ``backend`` (a Backend, or a broker URL) matching ``patterns``: use with ``async with``."""
    return EventStream(backend, patterns, backlog=backlog, require_broker=require_broker)


class EventFeed:
    """:class:`EventStream` for synchronous code: ``with listen_sync(url) as feed: for event in feed: ...``.

    The stream runs on a private loop thread; :meth:`get` waits for the next event (or a timeout)."""

    def __init__(self, backend: Backend | str, patterns: Sequence[str] = ("#",), *, backlog: int = DEFAULT_BACKLOG,
                 require_broker: bool = True) -> None:
        self.stream = EventStream(backend, patterns, backlog=backlog, require_broker=require_broker)
        self._loop = LoopThread("fairq-events")
        self._events: collections.deque[Event] = collections.deque()
        self._ready = threading.Condition()
        self._pump: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self.stream.connected

    @property
    def stats(self) -> ListenerStats:
        return self.stream.stats

    @property
    def problem(self) -> str | None:
        return self.stream.problem

    def __enter__(self) -> EventFeed:
        self._loop.run(self._open())
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self.stream.close(), timeout=10)
        finally:
            self._loop.stop()
            with self._ready:
                self._ready.notify_all()

    async def _open(self) -> None:
        await self.stream.__aenter__()
        self._pump = asyncio.ensure_future(self._forward())

    async def _forward(self) -> None:
        async for event in self.stream:
            with self._ready:
                if len(self._events) >= self.stream.backlog:
                    self._events.popleft()
                    self.stream.stats.dropped += 1
                self._events.append(event)
                self._ready.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._events:
                if self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._ready.wait(left)
            return self._events.popleft()

    def take(self) -> list[Event]:
        """Every event waiting now, without waiting."""
        with self._ready:
            events = list(self._events)
            self._events.clear()
            return events

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event


def listen_sync(backend: Backend | str, patterns: Sequence[str] = ("#",), *, backlog: int = DEFAULT_BACKLOG,
                require_broker: bool = True) -> EventFeed:
    """:func:`listen` for synchronous code: use with ``with``."""
    return EventFeed(backend, patterns, backlog=backlog, require_broker=require_broker)
