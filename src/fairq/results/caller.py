"""The caller's side of results: one inbox per app, opened at the first send that asks for a result.

It lives on the app's loop thread, beside the producer but on a connection of its own (a
producer's reconnects must not take the reply queue with them, and the inbox must not slow
the producer). On RabbitMQ a lost connection takes the reply queue and what was on its way to
it: the next send that asks for a result opens a new one, and waits on the old one time out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import TypeVar

from ..broker import Backend, Broker
from ..broker.base import ResultInbox
from ..errors import BrokerError, ResultTimeout
from ..loopthread import LoopThread
from .wire import STORE

T = TypeVar("T")


class Inbox:
    """Opens and reopens the inbox on ``backend``; every method runs on the app's loop."""

    def __init__(self, backend: Backend, ttl: float, store: bool) -> None:
        self.backend = backend
        self.ttl = ttl
        self._store = store
        self._broker: Broker | None = None
        self._inbox: ResultInbox | None = None
        self._watch: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()

    async def address(self) -> str:
        """What a task message carries to have its result come here (opens the inbox first)."""
        inbox = await self._open()
        return STORE if self._store else inbox.address

    async def _open(self) -> ResultInbox:
        async with self._opening:
            if self._inbox is None:
                await self._discard()
                broker = self.backend.broker()
                await broker.connect()
                self._broker = broker
                self._inbox = await broker.open_inbox(self.ttl)
                self._watch = asyncio.get_running_loop().create_task(self._on_loss(broker))
            return self._inbox

    async def _on_loss(self, broker: Broker) -> None:
        await broker.wait_lost()
        if self._broker is broker:
            self._inbox = None

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        return await (await self._open()).wait(ids, timeout)

    async def wait_all(self, ids: Sequence[str], timeout: float | None) -> None:
        """Until every id of ``ids`` has its result here; ResultTimeout naming how many did not."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pending = list(ids)
        while pending:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            done = set(await self.wait(pending, left))
            if not done:
                raise ResultTimeout(f"{len(pending)} of {len(ids)} results did not arrive within {timeout:g} s")
            pending = [i for i in pending if i not in done]

    async def get(self, message_id: str) -> bytes | None:
        return await (await self._open()).get(message_id)

    async def collect(self, ids: Sequence[str], timeout: float | None) -> list[bytes | None]:
        """Every result of ``ids``, in order, once all are here (ResultTimeout otherwise)."""
        await self.wait_all(ids, timeout)
        inbox = await self._open()
        return [await inbox.get(i) for i in ids]

    async def close(self) -> None:
        await self._discard()

    async def _discard(self) -> None:
        inbox, broker, watch = self._inbox, self._broker, self._watch
        self._inbox = self._broker = self._watch = None
        if watch is not None:
            watch.cancel()
        try:
            if inbox is not None:
                await inbox.close()
            if broker is not None:
                await broker.close()
        except BrokerError:
            pass


class ResultClient:
    """What a :class:`~fairq.results.handle.Handle` asks: the inbox, reached from any thread or loop."""

    def __init__(self, loop: LoopThread, inbox: Inbox) -> None:
        self._loop = loop
        self.inbox = inbox

    def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        return self._loop.run(self.inbox.wait(ids, timeout))

    def collect(self, ids: Sequence[str], timeout: float | None) -> list[bytes | None]:
        return self._loop.run(self.inbox.collect(ids, timeout))

    def get(self, message_id: str) -> bytes | None:
        return self._loop.run(self.inbox.get(message_id))

    async def wait_async(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        return await _on_caller_loop(self._loop.submit(self.inbox.wait(ids, timeout)))

    async def collect_async(self, ids: Sequence[str], timeout: float | None) -> list[bytes | None]:
        return await _on_caller_loop(self._loop.submit(self.inbox.collect(ids, timeout)))

    async def get_async(self, message_id: str) -> bytes | None:
        return await _on_caller_loop(self._loop.submit(self.inbox.get(message_id)))


async def _on_caller_loop(future: concurrent.futures.Future[T]) -> T:
    wrapped = asyncio.wrap_future(future)
    try:
        return await wrapped
    except asyncio.CancelledError:
        future.cancel()  # the caller gave up: stop waiting on the app's loop too
        raise
