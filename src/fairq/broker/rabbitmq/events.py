"""RabbitMQ's event channel: the ``fairq.events`` topic exchange, best-effort both ways.

Publishing (:class:`EventPublisher`): each batch is one transient message (delivery mode 1),
without confirms and without ``mandatory``, on a connection of its own, opened with the first
batch. Its own connection, not just a channel: during a memory or disk alarm RabbitMQ blocks
every connection that publishes and then stops reading from it, acks included, so events on
the worker's connection would stall its acks for as long as the alarm lasts (a connection
that only consumes and acks is never blocked). Nothing ever waits for the broker's answer.
With no listener the exchange has no binding and the broker drops the message at once. When
the broker pushes back (the events connection is blocked, or the socket stops draining so
batches pile up in flight) new batches are refused here: ``publish`` returns False and the
worker counts them as dropped. The exchange is declared durable (it is topology, like the
delay exchanges, and a listener may bind before any worker started); its messages are not.

Listening (:func:`subscribe`): a server-named, exclusive, auto-delete queue bound to the
exchange with the listener's patterns, capped at :data:`LISTENER_MAX_LENGTH` messages (the
broker drops the oldest for a listener that reads slowly: it can never grow without bound),
consumed with a prefetch of :data:`LISTENER_PREFETCH`, so a slow listener holds at most that
many in memory and the rest waits (capped) in its queue. It disappears with its listener's
channel or connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from pamqp import commands as spec

from ...errors import BrokerError
from ..base import EventHandler, EventSubscription
from .acks import AckBatcher
from .errors import error_code, reason, translated

log = logging.getLogger("fairq.broker")

EXCHANGE = "fairq.events"
#: Batches on their way (handed to aiormq, not yet written to the socket) at most; more are refused.
MAX_IN_FLIGHT = 16
#: Seconds before a failed events connection is tried again (batches meanwhile are refused).
RETRY_SECONDS = 5.0
#: Batches a listener holds unacknowledged at most (the rest wait in its queue).
LISTENER_PREFETCH = 64
#: Messages (batches) a listener's queue holds before the broker drops the oldest.
LISTENER_MAX_LENGTH = 1000
_PROPERTIES = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


async def declare_exchange(channel: AbstractChannel) -> None:
    await channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)


def is_blocked(connection: AbstractConnection | None) -> bool:
    """True while the broker has blocked ``connection`` (it published during a resource alarm)."""
    # aiormq tracks connection.blocked / unblocked in a private event; read it defensively.
    unblocked = getattr(connection, "_Connection__connection_unblocked", None)
    return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()


class EventPublisher:
    """One broker's event publishing, on a connection of its own opened with the first batch.

    A batch taken while the connection opens waits for it (at most :data:`MAX_IN_FLIGHT`); when
    opening fails, batches are refused for :data:`RETRY_SECONDS` before it is tried again."""

    def __init__(self, url: str, display_url: str) -> None:
        self._url = url
        self._display_url = display_url
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._opening: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._waiting: list[tuple[str, bytes]] = []
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: Batches taken that never reached the socket (their connection went first, or never opened).
        self.lost = 0

    def publish(self, key: str, body: bytes) -> bool:
        if self._closed or len(self._in_flight) + len(self._waiting) >= MAX_IN_FLIGHT:
            return False
        channel = self._channel
        if channel is not None and not channel.is_closed:
            if is_blocked(self._connection):
                return False
            self._send(channel, key, body)
            return True
        loop = asyncio.get_running_loop()
        if self._opening is None:
            if loop.time() < self._retry_at:
                return False
            self._opening = loop.create_task(self._open())
        self._waiting.append((key, body))
        return True

    def _send(self, channel: AbstractChannel, key: str, body: bytes) -> None:
        # wait=True: the task ends once the frames are written and the socket drained, so what is in
        # flight measures the broker's push-back.
        task = asyncio.ensure_future(cast(aiormq.Channel, channel).basic_publish(
            body, exchange=EXCHANGE, routing_key=key, properties=_PROPERTIES, wait=True))
        self._in_flight.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        if task.cancelled() or task.exception() is not None:
            self.lost += 1

    async def _open(self) -> None:
        connection: AbstractConnection | None = None
        try:
            await self._close_connection()
            connection = await aiormq.connect(self._url, client_properties={"connection_name": "fairq events"})
            channel = await connection.channel(publisher_confirms=False)
            await declare_exchange(channel)
        except Exception as exc:
            self.lost += len(self._waiting)
            self._waiting.clear()
            self._retry_at = asyncio.get_running_loop().time() + RETRY_SECONDS
            if connection is not None:
                await _close(connection)
            if error_code(exc) == 406:
                log.warning("events: the broker at %s refused the %r exchange (%s): is something else using that "
                            "name? Trying again in %.0f s", self._display_url, EXCHANGE, reason(exc), RETRY_SECONDS)
            else:
                log.debug("events: opening a connection to %s: %s", self._display_url, reason(exc))
            return
        finally:
            self._opening = None
        if self._closed:
            await _close(connection)
            return
        self._connection, self._channel = connection, channel
        waiting, self._waiting = self._waiting, []
        for key, body in waiting:
            self._send(channel, key, body)

    async def close(self, timeout: float) -> None:
        """Let what was taken reach the socket (at most ``timeout`` seconds), then close the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._opening is not None:
            await asyncio.wait({self._opening}, timeout=timeout)
        left = deadline - loop.time()
        if self._in_flight and left > 0:
            await asyncio.wait(set(self._in_flight), timeout=left)
        self._closed = True
        for task in self._in_flight:
            task.cancel()
        if self._opening is not None:
            self._opening.cancel()
        self._waiting.clear()
        await self._close_connection()

    async def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await _close(connection)


async def _close(connection: AbstractConnection) -> None:
    if connection.is_closed:
        return
    try:
        await connection.close()
    except Exception as exc:  # closing a dead connection is not an error worth raising
        log.debug("events: closing the connection: %s", reason(exc))


class RabbitEventSubscription(EventSubscription):
    """A listener's queue and its consumer, on their own channel."""

    def __init__(self, channel: AbstractChannel, queue: str, retired: set[AbstractChannel]) -> None:
        self._channel = channel
        self.queue = queue  #: the server-named queue (gone with the subscription)
        self._retired = retired

    async def cancel(self) -> None:
        if self._channel.is_closed:
            return
        self._retired.add(self._channel)  # closing it is not a lost connection
        try:
            await self._channel.close()  # its consumer goes, so the auto-delete queue goes
        except Exception as exc:
            log.debug("closing the event listener's channel: %s", reason(exc))


async def subscribe(connection: AbstractConnection, patterns: Sequence[str], handler: EventHandler,
                    watch: Callable[[AbstractChannel], None], retired: set[AbstractChannel],
                    display_url: str) -> RabbitEventSubscription:
    """Bind a fresh bounded queue to the exchange with ``patterns`` and consume it into ``handler``.

    ``watch(channel)`` makes the channel's unexpected closing a lost connection for the broker."""
    with translated("subscribe to events", display_url):
        channel = await connection.channel(publisher_confirms=False)
    try:
        with translated("subscribe to events", display_url):
            await declare_exchange(channel)
            ok = await channel.queue_declare("", exclusive=True, auto_delete=True,
                                             arguments={"x-max-length": LISTENER_MAX_LENGTH})
            queue = ok.queue or ""
            for pattern in patterns:
                await channel.queue_bind(queue, EXCHANGE, routing_key=pattern)

            acks = AckBatcher(channel, LISTENER_PREFETCH)

            async def on_message(message: DeliveredMessage) -> None:
                tag = message.delivery_tag or 0
                acks.delivered(tag)
                try:
                    handler(message.routing_key or "", message.body)
                except Exception:
                    log.exception("event subscriber %r failed", handler)
                if not channel.is_closed:
                    acks.ack(tag)

            await channel.basic_qos(prefetch_count=LISTENER_PREFETCH)
            await channel.basic_consume(queue, on_message)
    except BrokerError:
        if not channel.is_closed:
            await channel.close()
        raise
    watch(channel)
    return RabbitEventSubscription(channel, queue, retired)


__all__ = ["EXCHANGE", "LISTENER_MAX_LENGTH", "MAX_IN_FLIGHT", "EventPublisher", "RabbitEventSubscription",
           "declare_exchange", "subscribe"]
