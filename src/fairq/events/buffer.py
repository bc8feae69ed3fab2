"""The bounded buffer between a worker's hooks and its event channel: it drops, and counts, rather than wait.

Events must never slow a task or hold up an ack, so nothing that produces them ever
waits for room: when the buffer is full (the broker is away, or pushes back) a new task
event is dropped and counted, and the count goes out in the next heartbeat. Worker events
(online, heartbeats, offline) are few and say what state the worker is in, so they are
kept even then (:meth:`EventBuffer.add` with ``always``).

Used on one event loop only: no locks.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

#: Task events a worker process keeps while it cannot send them (about a second of a fast drain).
DEFAULT_CAPACITY = 10_000


class EventBuffer(Generic[T]):
    """At most ``capacity`` items in arrival order (plus the ones added with ``always``)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: deque[T] = deque()
        #: Items refused because the buffer was full, plus those the emitter reports lost (:meth:`lost`).
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, always: bool = False) -> bool:
        """Keep ``item`` unless full (``always``: keep it anyway); False if it was dropped."""
        if len(self._items) >= self.capacity and not always:
            self.dropped += 1
            return False
        self._items.append(item)
        return True

    def take(self, limit: int | None = None) -> list[T]:
        """Remove and return the oldest ``limit`` items (default: all), in order."""
        if limit is None or limit >= len(self._items):
            items = list(self._items)
            self._items.clear()
            return items
        return [self._items.popleft() for _ in range(limit)]

    def lost(self, count: int) -> None:
        """Count ``count`` items that were taken but could not be sent."""
        self.dropped += count
