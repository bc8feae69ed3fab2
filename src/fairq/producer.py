"""Publishing tasks: declare the queue once, publish with confirms, pipeline batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .broker import Broker, QueueSpec, connect_url
from .message import Envelope

#: Confirms in flight during a batch send: measured to saturate the client (BENCHMARKS.md).
DEFAULT_WINDOW = 1000


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

    async def publish(self, spec: QueueSpec, envelope: Envelope) -> None:
        """Publish one message and wait for its confirm."""
        broker = await self._ready(spec)
        await broker.publish(spec.name, envelope)

    async def publish_many(self, spec: QueueSpec, envelopes: Iterable[Envelope], window: int = DEFAULT_WINDOW) -> int:
        """Publish with up to ``window`` confirms outstanding; returns once all are confirmed.

        The first failure is raised after the messages in flight have settled;
        those already confirmed stay published (at-least-once, not transactional).
        """
        broker = await self._ready(spec)
        slots = asyncio.Semaphore(window)
        pending: set[asyncio.Task[None]] = set()
        failure: BaseException | None = None
        count = 0

        async def one(envelope: Envelope) -> None:
            try:
                await broker.publish(spec.name, envelope)
            finally:
                slots.release()

        for envelope in envelopes:
            await slots.acquire()
            if failure is not None:
                slots.release()
                break
            task = asyncio.ensure_future(one(envelope))
            pending.add(task)

            def settle(t: asyncio.Task[None]) -> None:
                nonlocal failure, count
                pending.discard(t)
                if t.cancelled():
                    return
                if t.exception() is not None:
                    failure = failure or t.exception()
                else:
                    count += 1

            task.add_done_callback(settle)
        if pending:
            await asyncio.wait(pending)
        if failure is not None:
            raise failure
        return count

    async def close(self) -> None:
        if self._broker is not None:
            await self._broker.close()
        self._broker = None
        self._declared.clear()
