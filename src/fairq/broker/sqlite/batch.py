"""``publish_nowait`` for SQLite: every publish started in one turn of the loop shares one transaction.

``send_many`` keeps hundreds of publishes in flight; one commit each (one fsync with
``synchronous=full``) would cap it at the disk's fsync rate. Publishes started while a batch
is being written wait for the next one, so a steady stream makes batches of whatever arrived
during the previous commit. Each message keeps its own outcome: a missing queue or a full one
refuses only the messages concerned.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import BrokerError
from ...message import Envelope
from . import queues
from .wake import notify

#: At most this many messages per transaction (keeps the write lock short for other processes).
MAX_BATCH = 500
Item = tuple[str, Envelope, float, "asyncio.Future[None]"]


def publish_many(conn: sqlite3.Connection, items: list[tuple[str, Envelope, float]]
                 ) -> tuple[list[BrokerError | None], set[str]]:
    """Store each message; its refusal (or None) and the wake addresses of the queues' consumers."""
    outcomes: list[BrokerError | None] = []
    woken: set[str] = set()
    for queue, envelope, delay in items:
        try:
            woken.update(queues.publish(conn, queue, envelope, delay))
            outcomes.append(None)
        except BrokerError as exc:  # PublishRejected, QueueFull: this message only
            outcomes.append(exc)
    return outcomes, woken


class PublishBatcher:
    """Collects ``publish_nowait`` calls and writes them in as few transactions as it can."""

    def __init__(self, write: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]) -> None:
        self._write = write
        self._pending: list[Item] = []
        self._flushing = False

    def add(self, queue: str, envelope: Envelope, delay: float,
            done: Callable[[int, BaseException | None], None], token: int) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def report(f: asyncio.Future[None]) -> None:  # exactly once, whatever ends the future
            done(token, asyncio.CancelledError() if f.cancelled() else f.exception())

        future.add_done_callback(report)
        self._pending.append((queue, envelope, delay, future))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = [item for item in self._pending[:MAX_BATCH] if not item[3].done()]
                del self._pending[:MAX_BATCH]
                if not batch:
                    continue
                try:
                    outcomes, woken = await self._write(
                        lambda conn: publish_many(conn, [(q, e, d) for q, e, d, _ in batch]))
                except BaseException as exc:  # the transaction failed as a whole: every message with it
                    error = exc if isinstance(exc, Exception) else BrokerError(f"publish: {exc!r}")
                    outcomes, woken = [error] * len(batch), set()
                notify(woken)
                for (_, _, _, future), outcome in zip(batch, outcomes):
                    if not future.done():
                        if outcome is None:
                            future.set_result(None)
                        else:
                            future.set_exception(outcome)
        finally:
            self._flushing = False


class AckBatcher:
    """Acks started in one turn of the loop share one transaction (a drain acks thousands a second)."""

    def __init__(self, write: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]], session: int) -> None:
        self._write = write
        self._session = session
        self._pending: list[tuple[int, asyncio.Future[None]]] = []
        self._flushing = False
        self._outstanding: set[asyncio.Future[None]] = set()

    async def drain(self) -> None:
        """Wait until every ack added so far is committed (or failed)."""
        if self._outstanding:
            await asyncio.wait(list(self._outstanding))

    def add(self, ident: int) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((ident, future))
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                rows = [(ident, self._session) for ident, _ in batch]
                try:
                    await self._write(lambda conn: conn.executemany(
                        "DELETE FROM messages WHERE id = ? AND session = ?", rows))
                    error: BaseException | None = None
                except Exception as exc:
                    error = exc
                for _, future in batch:
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            self._flushing = False
