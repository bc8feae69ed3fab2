"""The ``memory://`` backend's event channel: event batches handed from publisher to subscribers in process.

One bus per :class:`~fairq.broker.memory.MemoryStore`, so workers and listeners on one store
see each other's events as on one RabbitMQ. A batch nobody subscribed to is dropped at
once. Each subscriber has its own bounded backlog, delivered on its own loop (publishers
may be on other loops and threads); a subscriber that does not keep up loses its oldest
batches (counted in ``missed``), never the publisher's time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import ConnectionFailed
from .base import EventHandler, EventSubscription
from .topic import matcher

if TYPE_CHECKING:
    from .memory import MemoryStore

log = logging.getLogger("fairq.broker")

#: Batches a subscriber holds undelivered before the oldest go.
BACKLOG = 1000


class MemorySubscription(EventSubscription):
    def __init__(self, bus: MemoryEventBus, wants: Callable[[str], bool], handler: EventHandler,
                 alive: Callable[[], bool]) -> None:
        self._bus = bus
        self._wants = wants
        self._handler = handler
        self._alive = alive
        self._loop = asyncio.get_running_loop()
        self._pending: deque[tuple[str, bytes]] = deque()
        self._scheduled = False
        self.missed = 0

    def offer(self, key: str, body: bytes) -> None:
        """Queue a batch for the subscriber's loop (bus lock held)."""
        if not self._wants(key):
            return
        if not self._alive():
            self._bus.remove(self)
            return
        if len(self._pending) >= BACKLOG:
            self._pending.popleft()
            self.missed += 1
        self._pending.append((key, body))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # its loop is closed: the subscriber is gone
                self._bus.remove(self)

    def _deliver(self) -> None:
        with self._bus.lock:
            batches = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        for key, body in batches:
            try:
                self._handler(key, body)
            except Exception:
                log.exception("event subscriber %r failed on a %s batch", self._handler, key)

    async def cancel(self) -> None:
        self._bus.remove(self)


class MemoryEventBus:
    """The subscribers of one store."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # a subscriber found gone removes itself while offered a batch
        self._subscribers: list[MemorySubscription] = []

    def publish(self, key: str, body: bytes) -> None:
        with self.lock:
            for subscriber in list(self._subscribers):
                subscriber.offer(key, body)

    def add(self, subscriber: MemorySubscription) -> None:
        with self.lock:
            self._subscribers.append(subscriber)

    def remove(self, subscriber: MemorySubscription) -> None:
        with self.lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)


_buses: weakref.WeakKeyDictionary[MemoryStore, MemoryEventBus] = weakref.WeakKeyDictionary()
_buses_lock = threading.Lock()


def bus_of(store: MemoryStore) -> MemoryEventBus:
    """The event bus of ``store`` (made on first use)."""
    with _buses_lock:
        bus = _buses.get(store)
        if bus is None:
            bus = _buses[store] = MemoryEventBus()
        return bus


class MemoryEvents:
    """The event-channel half of :class:`~fairq.broker.memory.MemoryBroker` (a mixin)."""

    store: MemoryStore
    display_url: str
    _connected: bool

    def publish_event(self, key: str, body: bytes) -> bool:
        if not self._connected:
            return False
        bus_of(self.store).publish(key, body)
        return True

    async def subscribe_events(self, patterns: Sequence[str], handler: EventHandler) -> EventSubscription:
        if not self._connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        bus = bus_of(self.store)
        subscription = MemorySubscription(bus, matcher(patterns), handler, lambda: self._connected)
        bus.add(subscription)
        return subscription
