"""RabbitMQ backend of the broker seam, on aiormq.

With its two helpers, the one place that knows AMQP: queue arguments, confirms,
mandatory publishing here; the translation of aiormq's exceptions into fairq's in
:mod:`.rabbitmq_errors`; the delay chain's declarations in :mod:`.delay_topology`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec
from pamqp import encode
from pamqp.common import FieldValue

from ..config import redact
from ..errors import ChannelClosed, ConnectionFailed, QueueFull
from .. import message as wire
from ..message import Envelope
from .base import Broker, Consumer, Delivery, DeliveryHandler, QueueKind, QueueSpec, QueueStats
from . import delay_topology, delays
from .rabbitmq_errors import error_code as _code, reason as _reason, translate, translated
from .topology import dead_letter_queue, delay_level

log = logging.getLogger("fairq.broker")

PERSISTENT = 2
#: Effectively no limit, but explicit, so RabbitMQ 4's default of 20 does not apply to dead letters.
DLQ_DELIVERY_LIMIT = 2**30


def to_properties(envelope: Envelope) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=envelope.content_type,
        delivery_mode=PERSISTENT if envelope.persistent else 1,
        message_id=envelope.message_id,
        timestamp=envelope.timestamp,
        headers=envelope.headers or None,
    )


class SplicedProperties(spec.Basic.Properties):
    """Properties that marshal as a shared encoding with their own message id spliced in."""

    head = b""
    tail = b""

    def marshal(self) -> bytes:
        return self.head + encode.short_string(self.message_id or "") + self.tail


class SharedProperties:
    """The properties of a run of envelopes that differ only in message id (a batch from
    :func:`~fairq.message.encode_tasks`): pamqp encodes them once, not once per message,
    which is most of what publishing a message costs on the client.
    """

    _PROBE_ID = "0" * 32

    def __init__(self, envelope: Envelope) -> None:
        self.headers = envelope.headers
        self.timestamp = envelope.timestamp
        self.content_type = envelope.content_type
        self.persistent = envelope.persistent
        probe = to_properties(self._like(envelope, self._PROBE_ID))
        whole = probe.marshal()
        # Only the timestamp follows message_id among the properties fairq sets (AMQP's order);
        # it encodes alone as a property list of it alone, less its two flag bytes.
        tail = spec.Basic.Properties(timestamp=self.timestamp).marshal()[2:] if self.timestamp else b""
        head = whole[:len(whole) - len(tail) - 1 - len(self._PROBE_ID)]
        self.valid = head + encode.short_string(self._PROBE_ID) + tail == whole
        self.head, self.tail = head, tail

    @staticmethod
    def _like(envelope: Envelope, message_id: str) -> Envelope:
        return Envelope(envelope.body, envelope.headers, message_id, envelope.content_type, envelope.timestamp,
                        envelope.persistent)

    def fits(self, envelope: Envelope) -> bool:
        return (envelope.headers is self.headers and envelope.timestamp is self.timestamp
                and envelope.content_type == self.content_type and envelope.persistent == self.persistent)

    def properties(self, envelope: Envelope) -> spec.Basic.Properties:
        props = SplicedProperties(
            content_type=self.content_type,
            delivery_mode=PERSISTENT if self.persistent else 1,
            message_id=envelope.message_id,
            timestamp=self.timestamp,
            headers=self.headers or None,
        )
        props.head, props.tail = self.head, self.tail
        return props


def to_envelope(message: DeliveredMessage) -> Envelope:
    props = message.header.properties
    return Envelope(
        body=message.body,
        headers=dict(props.headers or {}),
        message_id=props.message_id,
        content_type=props.content_type,
        timestamp=props.timestamp,
        persistent=props.delivery_mode == PERSISTENT,
    )


def queue_arguments(spec_: QueueSpec) -> dict[str, FieldValue] | None:
    """The ``x-`` arguments fairq declares a new queue with."""
    if spec_.kind is QueueKind.PLAIN:
        return None
    args: dict[str, FieldValue] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(spec_.name),
    }
    if spec_.kind is QueueKind.QUORUM:
        args["x-queue-type"] = "quorum"
        if spec_.delivery_limit is not None:
            args["x-delivery-limit"] = spec_.delivery_limit
    if spec_.max_length is not None:
        args["x-max-length"] = spec_.max_length
        args["x-overflow"] = "reject-publish"
    if spec_.consumer_timeout is not None:
        args["x-consumer-timeout"] = int(spec_.consumer_timeout * 1000)
    return args


def dead_letter_arguments(kind: QueueKind) -> dict[str, FieldValue] | None:
    """A dead-letter queue is the same type as its queue. On quorum, an explicit, effectively
    unlimited delivery limit: RabbitMQ 4.0+ defaults to 20, and every `fairq dlq list` returns
    each dead letter once — looking at dead letters must never drop them."""
    if kind is QueueKind.QUORUM:
        return {"x-queue-type": "quorum", "x-delivery-limit": DLQ_DELIVERY_LIMIT}
    return None


class AckBatcher:
    """The acks of one channel, sent as few frames as possible.

    Every frame is a socket write, and a worker at full speed acks thousands of
    tasks a second. While other deliveries are still held (a prefetch window
    deeper than the running tasks), acks wait up to ``DELAY`` seconds or until
    ``BATCH`` of them are pending (a quarter of the consumer's prefetch, if less:
    the broker sends more only as acks free its window, so the rest of the window
    must keep the slots busy while the batch waits and travels), then go as one
    ``multiple`` ack for every acked tag below the lowest unsettled one, and singly
    above it. When nothing else is held the broker is waiting for this ack to send
    more, so it goes at once. An ack is only ever sent for a delivery that was
    acked (after its task finished).
    """

    DELAY = 0.002
    BATCH = 64

    def __init__(self, channel: AbstractChannel, prefetch: int = 0) -> None:
        self.channel = channel
        self.batch = max(1, min(self.BATCH, prefetch // 4)) if prefetch else self.BATCH
        self._unsettled: set[int] = set()
        self._pending: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._close_when_settled = False
        #: Ack frames not yet handed to the connection, in order, and the one task that writes them.
        #: One writer per channel, because order matters: a single ack written after a ``multiple``
        #: ack that already covered its tag is PRECONDITION_FAILED (unknown delivery tag), which closes
        #: the channel and requeues everything on it, and aiormq's bounded write queue lets concurrent
        #: writers overtake each other.
        self._outbox: deque[tuple[int, bool]] = deque()
        self._writer: asyncio.Future[None] | None = None

    def delivered(self, tag: int) -> None:
        self._unsettled.add(tag)

    def settled(self, tag: int) -> None:
        """The delivery was settled some other way (rejected)."""
        self._unsettled.discard(tag)
        self._maybe_close()

    def close_when_settled(self) -> None:
        """Close the channel once every delivery on it is settled and acked (a retired consumer's)."""
        self._close_when_settled = True
        self._maybe_close()

    def _maybe_close(self) -> None:
        # An ack frame for a channel that is already closed is a connection error (CHANNEL_ERROR,
        # "expected 'channel.open'"): the broker would drop the connection and requeue everything.
        if (self._close_when_settled and not self._unsettled and not self._pending and self._writer is None
                and not self.channel.is_closed):
            self._close_when_settled = False
            asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            await self.channel.close()
        except Exception as exc:
            log.debug("closing a retired channel: %s", _reason(exc))

    def ack(self, tag: int) -> None:
        if self.channel.is_closed:
            raise ChannelClosed("ack: channel already closed")
        self._unsettled.discard(tag)
        self._pending.append(tag)
        if not self._unsettled or len(self._pending) >= self.batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.DELAY, self._flush)

    def flush(self) -> None:
        """Send pending acks now (before a close)."""
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = sorted(self._pending), []
        if self.channel.is_closed or not pending:
            return
        floor = min(self._unsettled) if self._unsettled else None
        below = [t for t in pending if floor is None or t < floor]
        acks = [(below[-1], True)] if below else []
        acks += [(t, False) for t in pending[len(below):]]
        self._outbox.extend(acks)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        try:
            while self._outbox:
                tag, multiple = self._outbox.popleft()
                await self.channel.basic_ack(tag, multiple=multiple, wait=False)
        except Exception as exc:  # the channel died: the broker requeues what it had not seen acked
            log.warning("acks lost with their channel: %s", _reason(exc))
            self._outbox.clear()
            return
        finally:
            self._writer = None
        self._maybe_close()


class RabbitDelivery(Delivery):
    __slots__ = ("envelope", "queue", "redelivered", "delivery_count", "_acks", "_tag")

    def __init__(self, queue: str, message: DeliveredMessage, acks: AckBatcher) -> None:
        self.envelope = to_envelope(message)
        self.queue = queue
        deliver = message.delivery
        self.redelivered = bool(getattr(deliver, "redelivered", False))
        count = self.envelope.headers.get(wire.H_DELIVERY_COUNT)
        self.delivery_count = count if type(count) is int else None  # not a boolean
        self._acks = acks
        self._tag = message.delivery_tag or 0
        acks.delivered(self._tag)

    @property
    def alive(self) -> bool:
        return not self._acks.channel.is_closed

    async def ack(self) -> None:
        self._acks.ack(self._tag)

    async def requeue(self) -> None:
        try:
            with translated("requeue", ""):
                await self._acks.channel.basic_reject(self._tag, requeue=True, wait=False)
        finally:
            self._acks.settled(self._tag)  # only now may a retired channel close (see AckBatcher)


class RabbitConsumer(Consumer):
    def __init__(self, channel: AbstractChannel, tag: str, acks: AckBatcher, retired: set[AbstractChannel]) -> None:
        self._channel = channel
        self._tag = tag
        self._acks = acks
        self._retired = retired
        self._cancelled = False

    async def retire(self) -> None:
        self._retired.add(self._channel)
        await self.cancel()
        self._acks.close_when_settled()

    async def cancel(self) -> None:
        if self._cancelled or self._channel.is_closed:
            return
        self._cancelled = True
        with translated("cancel consumer", ""):
            await self._channel.basic_cancel(self._tag)


class RabbitMQBroker(Broker):
    """One AMQP connection: a confirm channel for publishing, one channel per consumer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.display_url = redact(url)
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._get_channel: AbstractChannel | None = None
        self._stats_channel: AbstractChannel | None = None
        self._get_acks: AckBatcher | None = None
        self._batchers: list[AckBatcher] = []
        self._retired: set[AbstractChannel] = set()
        self._lost: asyncio.Future[BaseException] | None = None
        self._closing = False
        self._delay_lock: asyncio.Lock | None = None
        self._delay_bound: set[str] = set()
        self._delay_chain = False
        self._shared: SharedProperties | None = None
        self._last_headers: dict[str, Any] | None = None

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        self._closing = False
        with translated("connect", self.display_url):
            self._connection = await aiormq.connect(self.url)
            self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._watch(self._connection.closing, "connection")

    def _watch(self, closing: asyncio.Future[Any], what: str, channel: AbstractChannel | None = None) -> None:
        def on_closed(fut: asyncio.Future[Any]) -> None:
            if self._closing or self._lost is None or self._lost.done():
                return
            if channel is not None and channel in self._retired:
                self._retired.discard(channel)
                return
            exc = None if fut.cancelled() else fut.exception()
            reason = _reason(exc) if exc else "closed"
            code = _code(exc) if exc is not None else None
            self._lost.set_result(ChannelClosed(f"{what} to {self.display_url} lost: {reason}", code))

        closing.add_done_callback(on_closed)

    def is_blocked(self) -> bool:
        # aiormq tracks connection.blocked / unblocked in a private event; read it defensively.
        unblocked = getattr(self._connection, "_Connection__connection_unblocked", None)
        return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()

    async def wait_lost(self) -> BaseException:
        assert self._lost is not None, "connect() first"
        return await asyncio.shield(self._lost)

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None and not self._connection.is_closed:
            for acks in self._batchers:
                acks.flush()
            try:
                # Acks and rejects are sent without waiting; aiormq drops frames still queued when
                # the connection closes. Opening a channel is a round trip behind them: once it
                # answers, they are on the wire.
                flush = await self._connection.channel(publisher_confirms=False)
                await flush.close()
            except Exception as exc:
                log.debug("flushing before close: %s", _reason(exc))
            try:
                await self._connection.close()
            except Exception as exc:  # closing a dead connection is not an error worth raising
                log.debug("closing connection: %s", _reason(exc))
        self._connection = None
        self._publish_channel = None
        self._get_channel = None
        self._stats_channel = None
        self._batchers.clear()
        self._delay_bound.clear()
        self._delay_chain = False

    def _require(self) -> aiormq.abc.AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionFailed(f"not connected to {self.display_url}")
        return self._connection

    async def _channel(self) -> AbstractChannel:
        with translated("open channel", self.display_url):
            return await self._require().channel(publisher_confirms=False)

    # -- topology ---------------------------------------------------------------------

    @asynccontextmanager
    async def _temporary_channel(self, action: str) -> AsyncIterator[AbstractChannel]:
        """A channel for one piece of topology work, closed afterwards; errors translated.

        Separate channels, because a refused declare or a passive declare of a missing
        queue closes its channel.
        """
        channel = await self._channel()
        try:
            with translated(action, self.display_url):
                yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def declare(self, spec_: QueueSpec) -> None:
        await self._declare_queue(spec_.name, queue_arguments(spec_))
        await self._declare_queue(dead_letter_queue(spec_.name), dead_letter_arguments(spec_.kind))
        await self._bind_for_delays(spec_.name)

    async def _declare_queue(self, name: str, arguments: dict[str, FieldValue] | None) -> None:
        """Passive first, so an existing queue (classic, or other arguments) is used as it is."""
        if await self._exists(name):
            return
        try:
            async with self._temporary_channel(f"declare queue {name!r}") as channel:
                await channel.queue_declare(name, durable=True, arguments=arguments)
        except ChannelClosed:
            # Lost a race with another declarer using other arguments: theirs stands.
            if not await self._exists(name):
                raise

    async def _ensure_delays(self, queue: str) -> None:
        """Declare the delay chain (once per connection) and bind ``queue`` to its end (once per queue)."""
        if self._delay_lock is None:
            self._delay_lock = asyncio.Lock()
        async with self._delay_lock:
            if queue in self._delay_bound:
                return
            async with self._temporary_channel(f"declare delays for {queue!r}") as channel:
                if not self._delay_chain:
                    await delay_topology.declare_chain(channel)
                    self._delay_chain = True
                await delay_topology.bind_destination(channel, queue)
            self._delay_bound.add(queue)

    async def _bind_for_delays(self, queue: str) -> None:
        """Ready ``queue`` for delayed messages from anyone, as its workers start (and as fairq sends).

        Best effort: a broker that refuses the delay chain must not stop a worker
        from consuming; a delayed send to the queue will raise the refusal.
        """
        problem = delays.undeliverable(queue)
        if problem:
            log.debug("queue %r cannot receive delayed messages (%s)", queue, problem)
            return
        try:
            await self._ensure_delays(queue)
        except ChannelClosed as exc:
            log.warning("delayed messages cannot reach %r: %s", queue, exc)

    async def _exists(self, queue: str) -> bool:
        return await self.stats(queue) is not None

    async def stats(self, queue: str) -> QueueStats | None:
        # One channel kept for these (a parked-to-be worker asks often), replaced when a missing queue
        # closes it.
        if self._stats_channel is None or self._stats_channel.is_closed:
            self._stats_channel = await self._channel()
        try:
            with translated(f"inspect queue {queue!r}", self.display_url):
                ok = await self._stats_channel.queue_declare(queue, passive=True)
        except ChannelClosed as exc:
            self._stats_channel = None
            if exc.code == 404:
                return None
            raise
        return QueueStats(queue, ok.message_count or 0, ok.consumer_count or 0)

    async def delete(self, queue: str) -> None:
        async with self._temporary_channel(f"delete queue {queue!r}") as channel:
            await channel.queue_delete(queue)

    async def purge(self, queue: str) -> int:
        async with self._temporary_channel(f"purge queue {queue!r}") as channel:
            ok = await channel.queue_purge(queue)
        return ok.message_count or 0

    # -- messages ---------------------------------------------------------------------

    async def publish(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        self._require()
        assert self._publish_channel is not None
        exchange, key = "", queue
        if delay > 0:
            await self._ensure_delays(queue)
            exchange, key = delay_level(delays.LEVELS - 1), delays.routing_key(delay, queue)
        channel = cast(aiormq.Channel, self._publish_channel)  # the concrete channel takes `wait`
        with translated(f"publish to {queue!r}", self.display_url):
            confirm = await channel.basic_publish(
                envelope.body,
                exchange=exchange,
                routing_key=key,
                properties=to_properties(envelope),
                mandatory=True,
                wait=False,  # no need to wait for the socket write: the confirm is awaited anyway
            )
        if not isinstance(confirm, spec.Basic.Ack):
            raise QueueFull(f"queue {queue!r} refused the message (nack): it is full, or the broker could not store it")

    def publish_nowait(self, queue: str, envelope: Envelope, delay: float,
                       done: Callable[[int, BaseException | None], None], token: int) -> asyncio.Future[Any]:
        channel = self._publish_channel
        if delay > 0 or channel is None or channel.is_closed or not envelope.message_id:
            return super().publish_nowait(queue, envelope, delay, done, token)
        publishing = cast(aiormq.Channel, channel).basic_publish(
            envelope.body, routing_key=queue, properties=self._batch_properties(envelope), mandatory=True,
            wait=False,  # no need to wait for the socket write: the confirm is awaited anyway
        )
        task = asyncio.get_running_loop().create_task(publishing)
        task.add_done_callback(partial(self._published, queue, done, token))
        return task

    def _published(self, queue: str, done: Callable[[int, BaseException | None], None], token: int,
                   task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            done(token, asyncio.CancelledError())
            return
        exc = task.exception()
        if exc is None:
            if isinstance(task.result(), spec.Basic.Ack):
                done(token, None)
                return
            exc = QueueFull(f"queue {queue!r} refused the message (nack): it is full, or the broker could not store it")
        done(token, translate(exc, f"publish to {queue!r}", self.display_url))

    def _batch_properties(self, envelope: Envelope) -> spec.Basic.Properties:
        """Shared encoding for the second and later envelopes of a run with the same headers object."""
        shared = self._shared
        if shared is None or not shared.fits(envelope):
            if envelope.headers is not self._last_headers:
                self._last_headers = envelope.headers
                return to_properties(envelope)
            shared = self._shared = SharedProperties(envelope)
        return shared.properties(envelope) if shared.valid else to_properties(envelope)

    async def consume(self, queue: str, prefetch: int, handler: DeliveryHandler) -> Consumer:
        channel = await self._channel()
        self._watch(channel.closing, f"consumer channel of {queue!r}", channel)

        def on_cancel(frame: Any) -> None:
            # The broker cancelled us (queue deleted; consumer timeout on RabbitMQ 4.3+):
            # treat it as a lost session, so the worker re-declares and consumes again.
            if not self._closing and self._lost is not None and not self._lost.done():
                self._lost.set_result(ChannelClosed(f"the broker cancelled the consumer of {queue!r}"))

        channel.on_consumer_cancel_callbacks.add(on_cancel)

        acks = AckBatcher(channel, prefetch)
        self._batchers.append(acks)

        async def on_message(message: DeliveredMessage) -> None:
            await handler(RabbitDelivery(queue, message, acks))

        with translated(f"consume {queue!r}", self.display_url):
            await channel.basic_qos(prefetch_count=prefetch)
            ok = await channel.basic_consume(queue, on_message)
        return RabbitConsumer(channel, ok.consumer_tag or "", acks, self._retired)

    async def get(self, queue: str) -> Delivery | None:
        if self._get_channel is None or self._get_channel.is_closed:
            self._get_channel = await self._channel()
            self._get_acks = AckBatcher(self._get_channel)
            self._batchers.append(self._get_acks)
        with translated(f"get from {queue!r}", self.display_url):
            message = await self._get_channel.basic_get(queue, no_ack=False)
        if not isinstance(message.delivery, spec.Basic.GetOk):
            return None
        assert self._get_acks is not None
        return RabbitDelivery(queue, message, self._get_acks)
