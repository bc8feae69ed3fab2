"""``memory://``: the broker seam in one process, for tests. Same promises as RabbitMQ minus durability.

Brokers built for one URL share one :class:`MemoryStore` (``memory://`` and ``memory://NAME`` are
separate stores); :meth:`MemoryBroker.on` builds one on an explicit store. Producer and worker may
run on different loops and threads (the sync API has its own loop thread): one lock guards the
store, and deliveries reach a consumer through its loop's ``call_soon_threadsafe``.

Delays use the store's clock: :func:`time.monotonic` with a timer thread by default, or a
:class:`ManualClock` that a test moves with :meth:`MemoryStore.advance` (no sleeping, no timers).
A closed broker, or one :meth:`MemoryStore.drop` cuts off (its ``wait_lost`` returns), gives its
unacked deliveries back with ``redelivered`` and ``delivery_count`` + 1 (a requeue is a settlement).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .. import message as wire
from ..errors import ChannelClosed, ConfigurationError, ConnectionFailed, PublishRejected, QueueFull
from ..message import Envelope
from .base import Broker, Consumer, Delivery, DeliveryHandler, QueueSpec, QueueStats
from .clock import ManualClock as ManualClock
from .memory_events import MemoryEvents
from .memory_results import MemoryResults
from .topology import dead_letter_queue


@dataclass
class _Message:
    seq: int
    envelope: Envelope
    delivery_count: int = 0
    redelivered: bool = False

    def __lt__(self, other: _Message) -> bool:  # the ready heap orders by publish sequence
        return self.seq < other.seq


@dataclass
class _Queue:
    spec: QueueSpec
    ready: list[_Message] = field(default_factory=list)  # a heap by seq: requeues keep their place
    consumers: list[MemoryConsumer] = field(default_factory=list)
    turn: int = 0  # round-robin start among consumers


class MemoryStore:
    """Queues, messages, delays and dead letters shared by the brokers of one process."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock or time.monotonic
        self._timers = clock is None
        self.lock = threading.RLock()
        self.queues: dict[str, _Queue] = {}
        self._delayed: list[tuple[float, int, str, _Message]] = []
        self._seq = itertools.count()
        self._timer: threading.Timer | None = None
        self._timer_at = float("inf")
        self.brokers: set[MemoryBroker] = set()

    def advance(self, seconds: float) -> None:
        """Move a :class:`ManualClock` forward and release every delayed message now due."""
        if not isinstance(self.clock, ManualClock):
            raise ConfigurationError("advance() needs a store built with a ManualClock")
        self.clock.now += seconds
        self.tick()

    def tick(self) -> None:
        """Make due delayed messages ready and hand them out (also called by every operation)."""
        with self.lock:
            now = self.clock()
            touched: set[str] = set()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, queue, msg = heapq.heappop(self._delayed)
                q = self.queues.get(queue)
                if q is not None:  # the queue was deleted meanwhile: the message goes with it
                    heapq.heappush(q.ready, msg)
                    touched.add(queue)
            for queue in touched:
                self.dispatch(queue)
            self._arm()

    def _arm(self) -> None:
        if not self._timers or not self._delayed:
            return
        at = self._delayed[0][0]
        if at >= self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = threading.Timer(max(0.0, at - self.clock()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self.lock:
            self._timer, self._timer_at = None, float("inf")
        self.tick()

    def delayed(self, queue: str) -> int:
        """Messages for ``queue`` waiting out a delay."""
        with self.lock:
            return sum(1 for entry in self._delayed if entry[2] == queue)

    def put(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        with self.lock:
            q = self.queues.get(queue)
            if q is None:
                raise PublishRejected(f"publish to {queue!r}: no such queue (memory://)")
            if q.spec.max_length is not None and len(q.ready) >= q.spec.max_length:
                raise QueueFull(f"queue {queue!r} is full ({q.spec.max_length} ready messages)")
            msg = _Message(next(self._seq), _copy(envelope))
            if delay > 0:
                heapq.heappush(self._delayed, (self.clock() + delay, msg.seq, queue, msg))
                self._arm()
            else:
                heapq.heappush(q.ready, msg)
                self.dispatch(queue)

    def take(self, queue: str) -> _Message | None:
        """The next ready message of ``queue`` (dead-lettering those over the delivery limit)."""
        q = self.queues.get(queue)
        while q is not None and q.ready:
            msg = heapq.heappop(q.ready)
            limit = q.spec.delivery_limit
            if limit is None or msg.delivery_count <= limit:
                return msg
            self._dead(queue, msg)
        return None

    def _dead(self, queue: str, msg: _Message) -> None:
        dlq = self.queues.get(dead_letter_queue(queue))
        if dlq is None:
            return
        copy = wire.republished(msg.envelope, **wire.dead_letter_headers(wire.REASON_DELIVERY_LIMIT),
                                **wire.dead_letter_stamp(queue))
        heapq.heappush(dlq.ready, _Message(next(self._seq), copy))

    def give_back(self, queue: str, msg: _Message, lost: bool) -> None:
        q = self.queues.get(queue)
        if q is None:
            return
        msg.redelivered = True
        if lost:
            msg.delivery_count += 1
        heapq.heappush(q.ready, msg)

    def dispatch(self, queue: str) -> None:
        """Hand ready messages to consumers with room, round robin. Call with the lock held."""
        q = self.queues.get(queue)
        while q is not None and q.ready:
            room = [c for c in q.consumers if c.has_room()]
            if not room:
                return
            consumer = room[q.turn % len(room)]
            q.turn += 1
            msg = self.take(queue)
            if msg is None:
                return
            consumer.hand(msg)

    def drop(self, broker: MemoryBroker | None = None) -> None:
        """Cut off ``broker`` (or every broker) as if its connection died: for fault tests."""
        with self.lock:
            for b in [broker] if broker else list(self.brokers):
                b.lose(ConnectionFailed(f"{b.display_url}: connection dropped by the store"))


_stores: dict[str, MemoryStore] = {}
_stores_lock = threading.Lock()


def store_for(url: str) -> MemoryStore:
    """The process-wide store of ``memory://NAME`` (created on first use)."""
    parts = urlsplit(url)
    if parts.scheme != "memory":
        raise ConfigurationError(f"not a memory:// URL: {url!r}")
    name = (parts.netloc + parts.path).strip("/")
    with _stores_lock:
        return _stores.setdefault(name, MemoryStore())


def _resolve(future: asyncio.Future[BaseException], cause: BaseException) -> None:
    if not future.done():
        future.set_result(cause)


def _copy(envelope: Envelope) -> Envelope:
    return Envelope(envelope.body, dict(envelope.headers), envelope.message_id, envelope.content_type,
                    envelope.timestamp, envelope.persistent)


class MemoryDelivery(Delivery):
    def __init__(self, broker: MemoryBroker, queue: str, msg: _Message, consumer: MemoryConsumer | None) -> None:
        self.envelope = _copy(msg.envelope)
        self.queue = queue
        self.redelivered = msg.redelivered
        self.delivery_count = msg.delivery_count
        self.redeliveries = msg.delivery_count  # the store counts deliveries lost with their connection
        self._broker = broker
        self._msg = msg
        self._consumer = consumer

    @property
    def alive(self) -> bool:
        return self in self._broker.unacked

    def _settle(self, back: bool) -> None:
        store = self._broker.store
        with store.lock:
            if self not in self._broker.unacked:
                return  # the connection is gone and the message went back already
            self._broker.unacked.discard(self)
            if self._consumer is not None:
                self._consumer.held -= 1
            if back:
                store.give_back(self.queue, self._msg, lost=False)
            store.dispatch(self.queue)

    async def ack(self) -> None:
        self._settle(back=False)

    async def requeue(self) -> None:  # back at its old place, by sequence
        self._settle(back=True)


class MemoryConsumer(Consumer):
    def __init__(self, broker: MemoryBroker, queue: str, prefetch: int, handler: DeliveryHandler) -> None:
        self.broker = broker
        self.queue = queue
        self.prefetch = prefetch
        self.handler = handler
        self.held = 0
        self.cancelled = False
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Future[None]] = set()

    def has_room(self) -> bool:
        return not self.cancelled and (self.prefetch == 0 or self.held < self.prefetch)

    def hand(self, msg: _Message) -> None:
        """Give ``msg`` to this consumer (lock held); the handler runs on the consumer's loop."""
        delivery = MemoryDelivery(self.broker, self.queue, msg, self)
        self.held += 1
        self.broker.unacked.add(delivery)
        try:
            self.loop.call_soon_threadsafe(self._start, delivery)
        except RuntimeError:  # its loop is closed: the delivery waits, unacked, for close() or drop()
            self.cancelled = True

    def _start(self, delivery: MemoryDelivery) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(self.handler(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def detach(self) -> None:
        with self.broker.store.lock:
            self.cancelled = True
            q = self.broker.store.queues.get(self.queue)
            if q is not None and self in q.consumers:
                q.consumers.remove(self)

    async def cancel(self) -> None:
        self.detach()


class MemoryBroker(MemoryEvents, MemoryResults, Broker):
    """A connection to a :class:`MemoryStore`."""

    def __init__(self, url: str = "memory://", store: MemoryStore | None = None) -> None:
        self.display_url = url
        self.store = store if store is not None else store_for(url)
        self.unacked: set[MemoryDelivery] = set()
        self.consumers: list[MemoryConsumer] = []
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: asyncio.Future[BaseException] | None = None

    @classmethod
    def on(cls, store: MemoryStore, name: str = "memory://") -> MemoryBroker:
        """A broker on an explicit store (no URL registry involved)."""
        return cls(name, store)

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lost = self._loop.create_future()
        with self.store.lock:
            self.store.brokers.add(self)
            self._connected = True

    def _require(self) -> None:
        if not self._connected:
            raise ConnectionFailed(f"{self.display_url}: not connected")

    def lose(self, cause: BaseException) -> None:
        """Give back every unacked delivery, drop the consumers, and report ``cause`` to ``wait_lost``."""
        store = self.store
        with store.lock:
            self._connected = False
            store.brokers.discard(self)
            queues = set()
            for consumer in self.consumers:
                consumer.detach()
            self.consumers.clear()
            for delivery in sorted(self.unacked, key=lambda d: d._msg.seq):
                store.give_back(delivery.queue, delivery._msg, lost=True)
                queues.add(delivery.queue)
            self.unacked.clear()
            for queue in queues:
                store.dispatch(queue)
        if self._lost is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_resolve, self._lost, cause)

    async def close(self) -> None:
        if self._connected:
            self.lose(ConnectionFailed(f"{self.display_url}: closed"))

    async def wait_lost(self) -> BaseException:
        assert self._lost is not None, "connect() first"
        return await asyncio.shield(self._lost)

    async def declare(self, spec: QueueSpec) -> None:
        self._require()
        with self.store.lock:
            self.store.queues.setdefault(spec.name, _Queue(spec))
            dlq = dead_letter_queue(spec.name)
            self.store.queues.setdefault(dlq, _Queue(QueueSpec(dlq)))  # spec.options are other backends': ignored

    async def publish(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        self._require()
        self.store.put(queue, envelope, delay)

    async def consume(self, queue: str, prefetch: int, handler: DeliveryHandler) -> Consumer:
        self._require()
        consumer = MemoryConsumer(self, queue, prefetch, handler)
        with self.store.lock:
            q = self.store.queues.get(queue)
            if q is None:
                raise ChannelClosed(f"consume {queue!r}: no such queue (memory://)", 404)
            q.consumers.append(consumer)
            self.consumers.append(consumer)
            self.store.tick()
            self.store.dispatch(queue)
        return consumer

    async def stats(self, queue: str) -> QueueStats | None:
        self._require()
        self.store.tick()
        with self.store.lock:
            q = self.store.queues.get(queue)
            if q is None:
                return None
            unacked = sum(1 for broker in self.store.brokers for d in broker.unacked if d.queue == queue)
            delayed = self.store.delayed(queue)
            return QueueStats(queue, len(q.ready), len(q.consumers), unacked=unacked, kind="memory", delayed=delayed)

    async def list_queues(self) -> list[str] | None:
        self._require()
        with self.store.lock:
            return sorted(self.store.queues)

    async def get(self, queue: str) -> Delivery | None:
        self._require()
        self.store.tick()
        with self.store.lock:
            if queue not in self.store.queues:
                raise ChannelClosed(f"get from {queue!r}: no such queue (memory://)", 404)
            msg = self.store.take(queue)
            if msg is None:
                return None
            delivery = MemoryDelivery(self, queue, msg, None)
            self.unacked.add(delivery)
            return delivery

    async def delete(self, queue: str) -> None:
        self._require()
        with self.store.lock:
            q = self.store.queues.pop(queue, None)
            for consumer in q.consumers if q else ():
                consumer.cancelled = True
                consumer.broker._lost_consumer(queue)

    def _lost_consumer(self, queue: str) -> None:
        if self._lost is not None and self._loop is not None and not self._loop.is_closed():
            cause = ConnectionFailed(f"the queue {queue!r} was deleted under its consumer")
            self._loop.call_soon_threadsafe(_resolve, self._lost, cause)

    async def purge(self, queue: str) -> int:
        self._require()
        self.store.tick()
        with self.store.lock:
            q = self.store.queues.get(queue)
            if q is None:
                return 0
            count = len(q.ready)
            q.ready.clear()
            return count
