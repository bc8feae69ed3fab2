"""RabbitMQ backend of the broker seam, on aiormq: one connection, its channels, publishing and consuming.

The rest of what fairq knows about AMQP is in this package's other modules, one job
each: :mod:`.errors` (aiormq's exceptions translated), :mod:`.acks`, :mod:`.properties`,
:mod:`.topology` and :mod:`.delays` (what gets declared), :mod:`.deliveries`,
:mod:`.management` (the HTTP API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from ...config import redact
from ...errors import ChannelClosed, ConnectionFailed, LoginRefused, QueueFull, TLSRefused
from ...message import Envelope
from ..base import (Broker, Consumer, Delivery, DeliveryHandler, EventHandler, EventSubscription, QueueSpec, QueueStats,
                    ResultInbox)
from ..topology import delay_level
from . import delays
from .acks import AckBatcher
from .deliveries import RabbitConsumer, RabbitDelivery, count_redelivery
from .errors import error_code as _code, lost, reason as _reason, translate, translated
from .events import EventPublisher, is_blocked, subscribe as subscribe_events
from .hosts import Node, Nodes
from .management import management_queues, queue_stats
from .properties import SharedProperties, to_properties
from .results import open_reply_queue, publish_reply
from .topology import Declarer

log = logging.getLogger("fairq.broker")

#: How long closing waits for event batches already taken to reach the socket.
EVENTS_DRAIN_SECONDS = 1.0


class RabbitMQBroker(Broker):
    """One AMQP connection: a confirm channel for publishing, one channel per consumer.

    ``url`` may name several nodes of a cluster (hosts.py): :meth:`connect` tries them in the
    order ``nodes`` keeps (the backend shares one among its connections) and stays on the first
    that answers. ``management_url``: RabbitMQ's management API, asked by :meth:`list_queues`
    (and only then).
    """

    def __init__(self, url: str, management_url: str | None = None, nodes: Nodes | None = None) -> None:
        self.url = url
        self.management_url = management_url
        self.nodes = nodes if nodes is not None else Nodes(url)
        self._node: Node | None = None  # the node connected to (kept after a loss, for the messages)
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._get_channel: AbstractChannel | None = None
        self._stats_channel: AbstractChannel | None = None
        self._get_acks: AckBatcher | None = None
        self._batchers: list[AckBatcher] = []
        self._retired: set[AbstractChannel] = set()
        self._lost: asyncio.Future[BaseException] | None = None
        self._closing = False
        self._declarer = Declarer(self._temporary_channel, self._exists)
        #: The management API's answer to the last :meth:`list_queues` on this connection.
        self._listed: dict[str, QueueStats] = {}
        self._shared: SharedProperties | None = None
        self._last_headers: dict[str, Any] | None = None
        self._events: EventPublisher | None = None  # a connection of its own, to the same node (events.py)

    @property
    def display_url(self) -> str:  # type: ignore[override]
        """The node connected to (password removed); before that, every node the URL names."""
        return self._node.display_url if self._node is not None else redact(self.url)

    @property
    def node(self) -> str:  # type: ignore[override]
        return self._node.address if self._node is not None and self._connection is not None else ""

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the first node that answers, in the order :class:`Nodes` keeps.

        A refused login or virtual host is the cluster's answer (users and vhosts are cluster-wide),
        so it is raised at once; a node that refuses the connection, fails TLS or says nothing
        within ``connect_timeout`` is passed over for the next. When none answers, the error names
        each node and why.
        """
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        self._closing = False
        failures: list[tuple[Node, BaseException]] = []
        for node in self.nodes.order():
            try:
                await self._connect_to(node)
            except LoginRefused as exc:
                if not isinstance(exc, TLSRefused):
                    raise
                failures.append((node, exc))  # a node's certificate: another node's may do
                continue
            except ConnectionFailed as exc:
                failures.append((node, exc))
                continue
            self.nodes.connected(node)
            assert self._connection is not None
            self._watch(self._connection.closing, "connection")
            return
        self._node = None
        if len(failures) == 1:
            raise failures[0][1]
        kind = TLSRefused if all(isinstance(e, TLSRefused) for _, e in failures) else ConnectionFailed
        raise kind(f"connect: no node of the cluster answered: "
                   + "; ".join(f"{node.address}: {_why(exc)}" for node, exc in failures))

    async def _connect_to(self, node: Node) -> None:
        self._node = node
        connection = None
        try:
            with translated("connect", node.display_url):
                try:
                    connection = await asyncio.wait_for(aiormq.connect(node.url), self.nodes.connect_timeout)
                except asyncio.TimeoutError:
                    raise ConnectionFailed(f"connect: the broker at {node.display_url} did not answer within "
                                           f"{self.nodes.connect_timeout:g} s (connect_timeout)") from None
                self._publish_channel = await connection.channel(publisher_confirms=True)
        except BaseException:
            if connection is not None:
                await _close_quietly(connection)
            raise
        self._connection = connection
        self._events = EventPublisher(node.url, node.display_url)

    def _watch(self, closing: asyncio.Future[Any], what: str, channel: AbstractChannel | None = None) -> None:
        def on_closed(fut: asyncio.Future[Any]) -> None:
            if self._closing or self._lost is None or self._lost.done():
                return
            if channel is not None and channel in self._retired:
                self._retired.discard(channel)
                return
            if channel is None and self._node is not None:
                self.nodes.lost(self._node)  # the next connection tries another node first
            self._lost.set_result(lost(what, self.display_url, None if fut.cancelled() else fut.exception()))

        closing.add_done_callback(on_closed)

    def is_blocked(self) -> bool:
        return is_blocked(self._connection)

    async def wait_lost(self) -> BaseException:
        assert self._lost is not None, "connect() first"
        return await asyncio.shield(self._lost)

    async def close(self) -> None:
        self._closing = True
        if self._events is not None:
            await self._events.close(EVENTS_DRAIN_SECONDS)
            self._events = None
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
        self._declarer.reset()
        self._listed = {}

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
        await self._declarer.declare(spec_)

    async def _exists(self, queue: str) -> bool:
        return await self.stats(queue) is not None

    async def list_queues(self) -> list[str] | None:
        """From the management API, when this broker was given its URL and it answers; else None.

        The answer also serves :meth:`stats` for the queues it listed, with their unacked
        counts and types, until the connection closes: one consistent picture for ``fairq status``.
        """
        if not self.management_url:
            return None
        url = self._node.url if self._node is not None else self.url
        listed = await asyncio.to_thread(management_queues, url, self.management_url)
        if listed is None:
            return None
        self._listed = queue_stats(listed)
        return sorted(self._listed)

    async def stats(self, queue: str) -> QueueStats | None:
        if queue in self._listed:
            return self._listed[queue]
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

    async def delayed_in_common(self) -> int | None:
        """What waits in the delay chain's levels, for every queue together: a level holds messages for
        any queue, and telling them apart would mean reading them. From the management API's listing
        when :meth:`list_queues` had one, else a passive declare per level (none when the chain was never
        declared)."""
        levels = [delay_level(level) for level in range(delays.LEVELS)]
        if self._listed:
            return sum(self._listed[name].ready for name in levels if name in self._listed)
        total = 0
        for name in levels:
            stats = await self.stats(name)
            if stats is None:
                if name == levels[0]:
                    return 0  # the chain is declared whole, at a connection's first delayed publish
                continue
            total += stats.ready
        return total

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
            await self._declarer.ensure_delays(queue)
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
        await self._declarer.bind_for_delays(queue)
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

        async def on_message(message: DeliveredMessage) -> None:  # aiormq runs each in a task of its own
            delivery = RabbitDelivery(queue, message, acks)
            if delivery.uncounted:  # a classic queue's redelivery: counted here, handed on as the copy
                await count_redelivery(delivery, self.publish)
            else:
                await handler(delivery)

        with translated(f"consume {queue!r}", self.display_url):
            await channel.basic_qos(prefetch_count=prefetch)
            ok = await channel.basic_consume(queue, on_message)
        return RabbitConsumer(channel, ok.consumer_tag or "", acks, self._retired)

    # -- events (events.py) ---------------------------------------------------------------

    def publish_event(self, key: str, body: bytes) -> bool:
        if self._connection is None or self._connection.is_closed or self._events is None:
            return False
        return self._events.publish(key, body)

    async def subscribe_events(self, patterns: Sequence[str], handler: EventHandler) -> EventSubscription:
        def watch(channel: aiormq.abc.AbstractChannel) -> None:
            self._watch(channel.closing, "event listener channel", channel)

        return await subscribe_events(self._require(), patterns, handler, watch, self._retired, self.display_url)

    # -- results (results.py) --------------------------------------------------------------

    async def open_inbox(self, ttl: float) -> ResultInbox:
        return await open_reply_queue(self._require(), ttl, self.display_url)

    async def publish_result(self, address: str, message_id: str, body: bytes, ttl: float) -> bool:
        self._require()
        assert self._publish_channel is not None
        return await publish_reply(self._publish_channel, address, message_id, body, ttl, self.display_url)

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


def _why(exc: BaseException) -> str:
    """A node's failure without the action and URL its error starts with (the node is named already)."""
    text = str(exc)
    for marker in (": cannot reach the broker at ", ": TLS with the broker at "):
        if marker in text:
            return text.split(marker, 1)[1].split(": ", 1)[-1]
    return text.removeprefix("connect: ")


async def _close_quietly(connection: aiormq.abc.AbstractConnection) -> None:
    try:
        await connection.close()
    except Exception as exc:
        log.debug("closing a half-open connection: %s", _reason(exc))
