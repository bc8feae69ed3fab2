"""RabbitMQ's event channel: the ``fairq.events`` topic exchange, best-effort both ways.

Publishing (:class:`EventPublisher`): each batch is one transient message (delivery mode 1)
on a channel of its own, without confirms and without ``mandatory``, so an event publish
never sits between a delivery and its ack on a consumer's channel and nothing ever waits for
the broker's answer. With no listener the exchange has no binding and the broker drops the
message at once. When the broker pushes back (a resource alarm blocks the connection, or
the socket stops draining so batches pile up in flight) new batches are refused here:
``publish`` returns False and the worker counts them as dropped. The exchange is declared
durable (it is topology, like the delay exchanges, and a listener may bind before any worker
started); its messages are not.

Listening (:func:`subscribe`): a server-named, exclusive, auto-delete queue bound to the
exchange with the listener's patterns, capped at :data:`LISTENER_MAX_LENGTH` messages (the
broker drops the oldest for a listener that reads slowly: it can never grow without bound),
consumed without acks. It disappears with its listener's channel or connection.
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
from .errors import error_code, reason, translated

log = logging.getLogger("fairq.broker")

EXCHANGE = "fairq.events"
#: Batches on their way (handed to aiormq, not yet written to the socket) at most; more are refused.
MAX_IN_FLIGHT = 16
#: Messages (batches) a listener's queue holds before the broker drops the oldest.
LISTENER_MAX_LENGTH = 1000
_PROPERTIES = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


async def declare_exchange(channel: AbstractChannel) -> None:
    await channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)


class EventPublisher:
    """One connection's event publishing; the channel opens with the first batch (which waits for it)."""

    def __init__(self, connection: Callable[[], AbstractConnection | None], blocked: Callable[[], bool],
                 display_url: str) -> None:
        self._connection = connection
        self._blocked = blocked
        self._display_url = display_url
        self._channel: AbstractChannel | None = None
        self._opening: asyncio.Task[None] | None = None
        self._waiting: list[tuple[str, bytes]] = []
        self._in_flight: set[asyncio.Task[Any]] = set()
        #: The broker refused the exchange (another type under this name): no events on this connection.
        self._refused = False
        #: Batches taken that never reached the socket (their channel or connection went first).
        self.lost = 0

    def publish(self, key: str, body: bytes) -> bool:
        connection = self._connection()
        if self._refused or connection is None or connection.is_closed or self._blocked():
            return False
        if len(self._in_flight) + len(self._waiting) >= MAX_IN_FLIGHT:
            return False
        channel = self._channel
        if channel is None or channel.is_closed:
            self._waiting.append((key, body))
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._open(connection))
            return True
        self._send(channel, key, body)
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

    async def _open(self, connection: AbstractConnection) -> None:
        try:
            channel = await connection.channel(publisher_confirms=False)
            await declare_exchange(channel)
        except Exception as exc:
            self.lost += len(self._waiting)
            self._waiting.clear()
            if error_code(exc) == 406:
                self._refused = True
                log.warning("events off for this connection: the broker at %s refused the %r exchange (%s): "
                            "is something else using that name?", self._display_url, EXCHANGE, reason(exc))
            else:
                log.debug("opening the events channel: %s", reason(exc))
            return
        finally:
            self._opening = None
        self._channel = channel
        waiting, self._waiting = self._waiting, []
        for key, body in waiting:
            self._send(channel, key, body)

    async def drain(self, timeout: float) -> None:
        """Let what was taken reach the socket (at most ``timeout`` seconds): called before closing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._opening is not None:
            await asyncio.wait({self._opening}, timeout=timeout)
        left = deadline - loop.time()
        if self._in_flight and left > 0:
            await asyncio.wait(set(self._in_flight), timeout=left)

    def reset(self) -> None:
        """The connection is closed: forget its channel (what was still in flight is lost)."""
        for task in self._in_flight:
            task.cancel()
        if self._opening is not None:
            self._opening.cancel()
        self._channel = None
        self._waiting.clear()


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

            async def on_message(message: DeliveredMessage) -> None:
                try:
                    handler(message.routing_key or "", message.body)
                except Exception:
                    log.exception("event subscriber %r failed", handler)

            await channel.basic_consume(queue, on_message, no_ack=True)
    except BrokerError:
        if not channel.is_closed:
            await channel.close()
        raise
    watch(channel)
    return RabbitEventSubscription(channel, queue, retired)


__all__ = ["EXCHANGE", "LISTENER_MAX_LENGTH", "MAX_IN_FLIGHT", "EventPublisher", "RabbitEventSubscription",
           "declare_exchange", "subscribe"]
