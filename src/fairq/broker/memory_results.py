"""The ``memory://`` backend's results: kept in the process's store for their TTL, like SQLite's file.

Any caller on the store may read a result, not only the one that sent the task, so a test can
look up a result by message id as it would on SQLite. Waiters may be on other loops and threads
than the worker that publishes: each is woken on its own loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConnectionFailed
from .base import ResultInbox
from .mailbox import CAPACITY

if TYPE_CHECKING:
    from .memory import MemoryStore

#: The address every memory inbox has: results are the store's, not one caller's.
ADDRESS = "memory"


class ResultShelf:
    """One store's results: body and expiry (store clock) by message id, bounded by TTL and count."""

    def __init__(self, store: MemoryStore) -> None:
        self._clock = store.clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def put(self, message_id: str, body: bytes, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            for key in [k for k, (expires, _) in self._items.items() if expires < now]:
                del self._items[key]
            self._items.setdefault(message_id, (now + ttl, body))
            while len(self._items) > CAPACITY:
                self._items.popitem(last=False)
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop is closed: that waiter is gone
                pass

    def get(self, message_id: str) -> bytes | None:
        with self._lock:
            item = self._items.get(message_id)
            return item[1] if item is not None and item[0] >= self._clock() else None

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.add(entry)
        try:
            while True:
                event.clear()
                done = [i for i in ids if self.get(i) is not None]
                left = None if deadline is None else deadline - loop.time()
                if done or left is not None and left <= 0:
                    return done
                try:
                    await asyncio.wait_for(event.wait(), left)
                except asyncio.TimeoutError:
                    pass
        finally:
            with self._lock:
                self._waiters.discard(entry)


_shelves: weakref.WeakKeyDictionary[MemoryStore, ResultShelf] = weakref.WeakKeyDictionary()
_shelves_lock = threading.Lock()


def shelf_of(store: MemoryStore) -> ResultShelf:
    with _shelves_lock:
        shelf = _shelves.get(store)
        if shelf is None:
            shelf = _shelves[store] = ResultShelf(store)
        return shelf


class MemoryInbox(ResultInbox):
    address = ADDRESS

    def __init__(self, shelf: ResultShelf) -> None:
        self._shelf = shelf

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        return await self._shelf.wait(ids, timeout)

    async def get(self, message_id: str) -> bytes | None:
        return self._shelf.get(message_id)


class MemoryResults:
    """The results half of :class:`~fairq.broker.memory.MemoryBroker` (a mixin)."""

    store: MemoryStore
    display_url: str
    _connected: bool

    async def open_inbox(self, ttl: float) -> ResultInbox:
        if not self._connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return MemoryInbox(shelf_of(self.store))

    async def publish_result(self, address: str, message_id: str, body: bytes, ttl: float) -> bool:
        if not self._connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        shelf_of(self.store).put(message_id, body, ttl)
        return True
