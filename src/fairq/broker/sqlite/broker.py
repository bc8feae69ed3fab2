"""The SQLite backend of the broker seam: Broker, Delivery and Consumer over one database file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ...errors import BrokerError, ChannelClosed, ConfigurationError, ConnectionFailed
from ...message import Envelope
from ..base import (Broker, Consumer, Delivery, DeliveryHandler, EventHandler, EventSubscription, QueueSpec, QueueStats,
                    ResultInbox)
from . import events, leases, queues, results
from .batch import AckBatcher, PublishBatcher
from .db import Database
from .schema import SYNCHRONOUS
from .wake import FALLBACK, WakeSocket, consumers_of, notify

T = TypeVar("T")
#: With no prefetch cap, claim (or deal in turn) at most this many messages per transaction.
CLAIM_BATCH = 100
DEFAULT_SYNCHRONOUS = "full"


def parse_url(url: str) -> tuple[Path, str]:
    """The database path and ``synchronous`` setting of a ``sqlite:///path?synchronous=…`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite:// URL: {url!r}")
    raw = parts.netloc + parts.path
    if not raw or raw == "/":
        raise ConfigurationError(f"sqlite broker URL needs a database path, e.g. sqlite:///var/lib/fairq.db: {url!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", DEFAULT_SYNCHRONOUS).lower()
    if synchronous not in SYNCHRONOUS:
        raise ConfigurationError(f"sqlite broker URL: synchronous must be one of {', '.join(SYNCHRONOUS)}, "
                                 f"got {synchronous!r}")
    if options:
        raise ConfigurationError(f"sqlite broker URL: unknown option(s) {', '.join(sorted(options))}")
    return Path(raw).expanduser().absolute(), synchronous


class SQLiteDelivery(Delivery):
    def __init__(self, broker: SQLiteBroker, queue: str, row: queues.Row, consumer: SQLiteConsumer | None) -> None:
        self.envelope = row.envelope
        self.queue = queue
        self.redelivered = row.redelivered
        self.delivery_count = row.delivery_count
        self.redeliveries = row.delivery_count  # the row counts claims lost unsettled (leases.py)
        self._broker = broker
        self._id = row.id
        self._consumer = consumer
        self._settled = False

    @property
    def alive(self) -> bool:
        return self._broker.connected

    async def _settle(self, requeue: bool) -> None:
        if self._settled:
            return
        self._settled = True
        broker, consumer = self._broker, self._consumer
        if not self.alive:  # the session is gone: the message went back already
            if consumer is not None:
                consumer.settled()
            return
        if not requeue:
            # Like an AMQP ack, not waited for: the batch commits soon (close() waits for it), and a
            # crash before then redelivers. The consumer's window opens only once it is committed.
            broker.acks.add(self._id).add_done_callback(self._committed)
            return
        try:
            notify(await broker.db.write(partial(queues.requeue, ident=self._id, session=broker.session,
                                                 queue=self.queue)))
        finally:
            if consumer is not None:
                consumer.settled()

    def _committed(self, future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:  # the claim stays ours, unsettled: give up the session, the message comes back
            self._broker.lose(error)
        elif self._consumer is not None:
            self._consumer.settled()

    async def ack(self) -> None:
        await self._settle(requeue=False)

    async def requeue(self) -> None:
        await self._settle(requeue=True)


class SQLiteConsumer(Consumer):
    """Claims messages for one subscription: after each wake-up, settlement, or the fallback timer."""

    def __init__(self, broker: SQLiteBroker, queue: str, prefetch: int, handler: DeliveryHandler, ident: int) -> None:
        self._broker = broker
        self.queue = queue
        self._prefetch = prefetch
        self._handler = handler
        self._ident = ident
        self._held = 0
        self._cancelled = False
        self._poke = asyncio.Event()
        self._handlers: set[asyncio.Future[None]] = set()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        self._poke.set()

    def settled(self) -> None:
        self._held -= 1
        self._poke.set()

    async def _run(self) -> None:
        try:
            while not self._cancelled:
                room = self._prefetch - self._held if self._prefetch else CLAIM_BATCH
                following: float | None = None
                if room > 0:
                    self._poke.clear()
                    # No cap: take turns with the queue's other uncapped consumers, as RabbitMQ's round-robin.
                    take = (partial(queues.claim, limit=room) if self._prefetch
                            else partial(queues.claim_in_turn, consumer=self._ident, limit=room))
                    found = await self._broker.db.write(partial(take, queue=self.queue, session=self._broker.session))
                    if found is None:
                        raise ChannelClosed(f"the queue {self.queue!r} was deleted under its consumer", 404)
                    notify(found.woken)
                    following = found.following
                    if self._cancelled:  # cancel() began while the claim was on the database thread
                        await self._release(found.rows)
                        return
                    for row in found.rows:
                        self._deliver(SQLiteDelivery(self._broker, self.queue, row, self))
                    if found.more:
                        await asyncio.sleep(0)  # let the handlers start; more may be ready
                        continue
                timeout = FALLBACK if following is None else min(FALLBACK, max(0.0, following - time.time()))
                try:
                    await asyncio.wait_for(self._poke.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except BrokerError as exc:
            if not self._cancelled:
                self._broker.lose(exc)

    async def _release(self, rows: list[queues.Row]) -> None:
        if not rows:
            return
        try:
            await self._broker.db.write(partial(queues.release, idents=[r.id for r in rows],
                                                session=self._broker.session))
        except BrokerError as exc:  # still ours: end the session, which gives them back
            self._broker.lose(exc)
            return
        notify(await self._broker.db.run(lambda conn: consumers_of(conn, [self.queue])))

    def _deliver(self, delivery: SQLiteDelivery) -> None:
        self._held += 1
        task: asyncio.Future[None] = asyncio.ensure_future(self._handler(delivery))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        # Not task.cancel(): a claim already on the database thread commits anyway, and its rows would
        # stay held by this live session with nobody to deliver them. The loop stops at its next turn
        # and gives back what that last claim took.
        self._cancelled = True
        self._poke.set()
        try:
            await self._task
        except (asyncio.CancelledError, BrokerError):
            pass
        self._broker.consumers.discard(self)
        if self._broker.connected:
            notify(await self._broker.db.write(partial(queues.remove_consumer, ident=self._ident)))


class SQLiteBroker(Broker):
    """A connection to a fairq SQLite database: one session, one database thread, one heartbeat."""

    def __init__(self, url: str) -> None:
        self.display_url = url
        self.path, self._synchronous = parse_url(url)
        self.db = Database(self.path, self._synchronous)
        self.session = 0
        self.connected = False
        self.consumers: set[SQLiteConsumer] = set()
        self._wake: WakeSocket | None = None
        self._heartbeat: leases.Heartbeat | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: asyncio.Future[BaseException] | None = None
        self._batcher = PublishBatcher(self._write)
        self._events = events.EventWriter(self.path)
        self.subscriptions: set[events.SQLiteEventSubscription] = set()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lost = self._loop.create_future()
        await self.db.open()
        self.session = await self.db.write(leases.open_session)
        self.acks = AckBatcher(self.db.write, self.session)
        self.connected = True
        self._heartbeat = leases.Heartbeat(self.path, self._synchronous, self.session, self._lost_from_thread)
        self._heartbeat.start()

    def _lost_from_thread(self, cause: BaseException) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.lose, cause)

    def lose(self, cause: BaseException) -> None:
        """The session is gone (lease lost, database failing): deliveries are dead, ``wait_lost`` returns."""
        self.connected = False
        for consumer in list(self.consumers):
            consumer._cancelled = True
            consumer._task.cancel()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(cause)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        for consumer in list(self.consumers):
            await consumer.cancel()
        for subscription in list(self.subscriptions):
            await subscription.cancel()
        await self._events.close()
        if self.connected:
            await self.acks.drain()  # acked is acked: commit them before the session's claims go back
            self.connected = False
            try:
                freed = await self.db.write(partial(leases.end_session, session=self.session))
                notify(await self.db.run(lambda conn: consumers_of(conn, freed)))
            except BrokerError:
                pass  # the heartbeat stops: the session expires by itself
        if self._wake is not None:
            self._wake.close()
            self._wake = None
        await self.db.close()

    async def wait_lost(self) -> BaseException:
        assert self._lost is not None, "connect() first"
        return await asyncio.shield(self._lost)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self.connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return await self.db.write(fn)

    async def declare(self, spec: QueueSpec) -> None:
        await self._write(partial(queues.declare, spec=spec))

    async def publish(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        notify(await self._write(partial(queues.publish, queue=queue, envelope=envelope, delay=delay)))

    def publish_nowait(self, queue: str, envelope: Envelope, delay: float,
                       done: Callable[[int, BaseException | None], None], token: int) -> asyncio.Future[Any]:
        return self._batcher.add(queue, envelope, delay, done, token)

    async def consume(self, queue: str, prefetch: int, handler: DeliveryHandler) -> Consumer:
        if self._wake is None:
            self._wake = WakeSocket.create()
            if self._wake is not None:
                self._wake.listen(self._woken)
        address = self._wake.address if self._wake is not None else None
        ident = await self._write(partial(queues.add_consumer, session=self.session, queue=queue, wake=address,
                                          prefetch=prefetch))
        if ident is None:
            raise ChannelClosed(f"consume {queue!r}: no such queue", 404)
        consumer = SQLiteConsumer(self, queue, prefetch, handler, ident)
        self.consumers.add(consumer)
        return consumer

    def _woken(self) -> None:
        for consumer in self.consumers:
            consumer.wake()

    async def stats(self, queue: str) -> QueueStats | None:
        if not self.connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return await self.db.run(partial(queues.stats, queue=queue))  # a read: no write lock, no commit

    async def list_queues(self) -> list[str] | None:
        if not self.connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return await self.db.run(queues.names)  # a read, as stats

    def publish_event(self, key: str, body: bytes) -> bool:
        return self.connected and self._events.publish(key, body)

    async def subscribe_events(self, patterns: Sequence[str], handler: EventHandler) -> EventSubscription:
        if not self.connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return await events.subscribe(self, patterns, handler)

    async def open_inbox(self, ttl: float) -> ResultInbox:
        if not self.connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")
        return results.SQLiteInbox(self)

    async def publish_result(self, address: str, message_id: str, body: bytes, ttl: float) -> bool:
        await self._write(partial(results.put, message_id=message_id, body=body, ttl=ttl))
        return True

    async def get(self, queue: str) -> Delivery | None:
        found = await self._write(partial(queues.claim, queue=queue, session=self.session, limit=1))
        if found is None:
            raise ChannelClosed(f"get from {queue!r}: no such queue", 404)
        return SQLiteDelivery(self, queue, found.rows[0], None) if found.rows else None

    async def delete(self, queue: str) -> None:
        notify(await self._write(partial(queues.delete, queue=queue)))

    async def purge(self, queue: str) -> int:
        return await self._write(partial(queues.purge, queue=queue))
