"""Results that reached one caller, kept until read or expired, and the waits for them.

What an inbox (:class:`~fairq.broker.base.ResultInbox`) that is *pushed* its results keeps:
RabbitMQ's reply queue and memory's store hand each result here as it arrives, on the
caller's loop, whether or not anyone waits for it yet. Bounded twice: a result older than
its TTL goes, and beyond ``capacity`` the oldest goes first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

#: Results one inbox keeps unread at most (the oldest go first).
CAPACITY = 100_000


class Mailbox:
    """Result bodies by message id; used from one event loop."""

    def __init__(self, ttl: float, capacity: int = CAPACITY, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._capacity = capacity
        self._clock = clock
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def deliver(self, message_id: str, body: bytes) -> None:
        """Keep ``body`` for the mailbox's TTL; wake whoever waits for it. A later copy (a redelivered
        task run twice) does not replace the first."""
        now = self._clock()
        self._expire(now)
        if message_id not in self._items:
            self._items[message_id] = (now + self.ttl, body)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        for waiter in self._waiters.pop(message_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    def get(self, message_id: str) -> bytes | None:
        item = self._items.get(message_id)
        if item is None:
            return None
        if item[0] < self._clock():
            del self._items[message_id]
            return None
        return item[1]

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        """The ids of ``ids`` whose result is here, as soon as there is one (empty: ``timeout`` passed)."""
        done = [i for i in ids if i in self._items]
        if done or timeout is not None and timeout <= 0:
            return done
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for i in ids:
            self._waiters.setdefault(i, set()).add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            for i in ids:
                waiting = self._waiters.get(i)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[i]
        return [i for i in ids if i in self._items]

    def _expire(self, now: float) -> None:
        # Oldest first: insertion order is arrival order, and one mailbox has one TTL.
        while self._items:
            key, (expires, _) = next(iter(self._items.items()))
            if expires >= now:
                return
            del self._items[key]
