"""The broker seam: what fairq needs from a message broker, with its semantics.

Every backend implements :class:`Broker` and :class:`Delivery` and must keep
these promises (tests/contract checks them for every backend):

* **At-least-once.** A message handed to a consumer stays owned by the broker
  until it is acked. If the consumer's connection dies first, the message is
  delivered again (to anyone) with ``redelivered`` set and
  :attr:`Delivery.redeliveries` one higher.
* **Confirmed publish.** :meth:`Broker.publish` returns only once the broker has
  taken responsibility for the message (persisted where the queue is durable),
  and raises :class:`~fairq.errors.PublishRejected` when it did not, including
  when the target queue does not exist (unroutable is an error, never a drop).
* **Prefetch cap.** A consumer started with ``prefetch=N`` (N > 0) never holds
  more than N unacknowledged deliveries; ``prefetch=0`` means no cap.
* **Delays.** ``publish(..., delay=s)`` makes a message ready no sooner than
  ``s`` seconds later, and shortly after; the broker holds it meanwhile.
* **Ack / requeue / dead-letter.** :meth:`Delivery.ack` removes the message.
  :meth:`Delivery.requeue` puts it back for any consumer at once.
  :meth:`Broker.dead_letter` moves it to the queue's dead-letter queue with the
  given headers, publishing the copy *before* acking the original so a crash in
  between duplicates rather than loses it.

Results (docs/results.md) go straight to the caller that asked: :meth:`Broker.open_inbox` on the
caller's side gives an address, the worker's :meth:`Broker.publish_result` sends to it. Each
backend carries them its own way and keeps them at most their TTL.

Events (docs/events.md) ride a channel of their own with the opposite promises:
best-effort, never waited for, dropped when nobody listens or the broker pushes back
(:meth:`Broker.publish_event`, :meth:`Broker.subscribe_events`).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .. import message as wire
from ..errors import BrokerError
from ..message import Envelope
from .topology import dead_letter_queue


def _no_options() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class QueueSpec:
    """A queue fairq consumes from or publishes to, and how to create it if it is missing.

    Everything but the name applies only when fairq creates the queue; an existing queue
    is used as it is. Every backend honours the fields; ``options`` holds settings that
    only some backends have, by name, and a backend ignores the names it does not know,
    so one spec serves every backend. RabbitMQ's (the queue type, quorum or classic) are
    in :mod:`fairq.broker.rabbitmq.options`; SQLite and memory take none.
    """

    name: str
    #: Refuse publishes beyond this many ready messages (``send`` raises QueueFull or waits).
    max_length: int | None = None
    #: Deliveries after which a message is dead-lettered instead of delivered again.
    delivery_limit: int | None = None
    #: The longest time limit of the tasks run from this queue, in seconds (None: none has one). A
    #: backend that takes deliveries back after a while unsettled gives them at least this long.
    task_time_limit: float | None = None
    #: Backend options, by name (see above); read-only.
    options: Mapping[str, Any] = field(default_factory=_no_options, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.options, MappingProxyType):
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


@dataclass(frozen=True)
class QueueStats:
    """What a backend tells about a queue; None where it cannot tell (RabbitMQ without its management API)."""

    name: str
    ready: int
    consumers: int
    #: Handed out and not yet settled.
    unacked: int | None = None
    #: How the backend stores the queue, in its own words (``quorum``, ``classic``, ``sqlite``, ``memory``).
    kind: str | None = None
    #: Messages for this queue waiting out a delay (a ``send --delay``, a retry's backoff), not yet ready.
    #: None where the backend keeps delays for every queue together (RabbitMQ's delay chain:
    #: :meth:`Broker.delayed_in_common` counts them).
    delayed: int | None = None


@dataclass(frozen=True)
class BrokerDeath:
    """Why the broker itself (not a fairq worker) dead-lettered a message, as the broker recorded it."""

    reason: str  #: in fairq's words: ``delivery limit``, ``expired``, ``rejected``, ``maxlen``
    queue: str | None = None  #: the queue it died in
    at: str | None = None  #: when, ISO 8601


class Delivery(abc.ABC):
    """One message handed to a consumer, owned by the broker until settled."""

    envelope: Envelope
    queue: str
    redelivered: bool
    #: How often this message was handed out before without being settled (0: a first delivery).
    #: Each backend counts in its own way (its broker's counter, or a counted copy at the back of
    #: the queue where the broker keeps none); workers compare it with their delivery limit. Whether
    #: a requeue counts differs by backend.
    redeliveries: int

    @property
    def death(self) -> BrokerDeath | None:
        """The broker's own record of dead-lettering this message; None unless the broker did it."""
        return None

    @property
    def death_reason(self) -> str | None:
        """Why the broker itself dead-lettered this message (``delivery limit``...); None unless it did."""
        death = self.death
        return death.reason if death is not None else None

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """False once the channel it came on is gone: the broker has taken it back for redelivery."""

    @abc.abstractmethod
    async def ack(self) -> None:
        """Remove the message: it is done."""

    @abc.abstractmethod
    async def requeue(self) -> None:
        """Give the message back to the queue at once, for any consumer."""


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Consumer(abc.ABC):
    """A running subscription; cancel it to stop new deliveries."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop deliveries. Unacked deliveries stay owned by this consumer until settled.

        Calling it again does nothing (a worker retires a parked consumer once more when it
        cannot tell whether an earlier replacement got that far)."""

    async def retire(self) -> None:
        """Stop deliveries and release the consumer's resources once its deliveries are settled.

        Used to replace a consumer by one with another prefetch (quorum queues fix
        a consumer's prefetch when it starts). Losing it is not a lost connection.
        """
        await self.cancel()


#: Called with each event batch's routing key and body, on the subscriber's loop; keep it quick.
EventHandler = Callable[[str, bytes], None]


class EventSubscription(abc.ABC):
    """A listener's subscription to the event channel (:meth:`Broker.subscribe_events`)."""

    #: Batches this subscription knows it missed (the backend dropped them for a slow reader), if it can tell.
    missed: int = 0

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop receiving; the backend forgets the subscription (a RabbitMQ listener's queue goes)."""


class ResultInbox(abc.ABC):
    """Where the results of one caller's tasks arrive (:meth:`Broker.open_inbox`), kept until their TTL."""

    #: What a task message carries (``fairq-reply-to``) so that a worker's result reaches this inbox.
    address: str

    @abc.abstractmethod
    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        """The ids of ``ids`` whose result has arrived, as soon as one has (empty once ``timeout`` passed)."""

    @abc.abstractmethod
    async def get(self, message_id: str) -> bytes | None:
        """The result body of ``message_id`` if it has arrived and not expired; never waits."""

    async def close(self) -> None:
        """Stop receiving (a RabbitMQ reply queue goes with it)."""


class Broker(abc.ABC):
    """A connection to a message broker, used from one asyncio event loop."""

    #: A redacted description of where this broker is, for logs and errors.
    display_url: str
    #: Which server of a clustered backend this connection is on (a RabbitMQ node's ``host:port``) while
    #: connected; "" before, and on backends that are one place (SQLite, memory).
    node: str = ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection; raises :class:`~fairq.errors.ConnectionFailed`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues."""

    def is_blocked(self) -> bool:
        """True while the broker refuses to read our publishes (a memory or disk alarm)."""
        return False

    @abc.abstractmethod
    async def wait_lost(self) -> BaseException:
        """Return (with the cause) once the connection or a consumer's channel is gone.

        Workers wait on this next to their stop signal: a worker must never sit
        alive while consuming nothing.
        """

    @abc.abstractmethod
    async def declare(self, spec: QueueSpec) -> None:
        """Make sure ``spec.name`` and its dead-letter queue exist.

        A queue that already exists is used as it is, whatever its type and
        arguments: fairq never fails because someone else declared it first.
        """

    @abc.abstractmethod
    async def publish(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        """Put one message on ``queue`` and wait for the broker's confirm.

        With ``delay`` > 0 the broker holds the message at least that many seconds
        before it becomes ready in ``queue``: held by the broker (not by any worker),
        surviving a broker restart, and never delivered early.
        """

    def publish_nowait(self, queue: str, envelope: Envelope, delay: float,
                       done: Callable[[int, BaseException | None], None], token: int) -> asyncio.Future[Any]:
        """Start :meth:`publish` without waiting for it: how batches keep many confirms in flight.

        ``done(token, error)`` is called once, from the event loop, when the publish
        ends: ``error`` is None once the broker confirmed the message, else the
        fairq error :meth:`publish` would have raised, or a ``CancelledError`` if the
        returned future was cancelled. Backends may override it with a cheaper path.
        """
        task = asyncio.ensure_future(self.publish(queue, envelope, delay))

        def finished(task: asyncio.Future[None]) -> None:
            done(token, asyncio.CancelledError() if task.cancelled() else task.exception())

        task.add_done_callback(finished)
        return task

    @abc.abstractmethod
    async def consume(self, queue: str, prefetch: int, handler: DeliveryHandler) -> Consumer:
        """Start delivering messages from ``queue`` to ``handler``, at most ``prefetch`` unacked (0: no cap)."""

    @abc.abstractmethod
    async def stats(self, queue: str) -> QueueStats | None:
        """Ready count and consumers of ``queue``; None if it does not exist."""

    async def delayed_in_common(self) -> int | None:
        """Messages waiting out a delay in a store every queue shares, where the backend cannot tell
        them apart by queue (RabbitMQ's delay chain); None where :attr:`QueueStats.delayed` counts each
        queue's own (this default)."""
        return None

    async def list_queues(self) -> list[str] | None:
        """Every queue this backend holds (fairq's internal ones and dead-letter queues included),
        or None when it cannot list them (RabbitMQ without an answering management API)."""
        return None

    def publish_event(self, key: str, body: bytes) -> bool:
        """Hand one event batch (routing key ``key``, e.g. ``task.started``) to the event channel.

        Best-effort and never waited for: it neither blocks nor raises, and what it takes may
        still be lost. False if it was dropped here: no event channel, not connected, or the
        broker pushing back (too much in flight, a resource alarm). With nobody listening the
        backend drops it at once, which is not a refusal. :meth:`close` lets what was taken go
        out first (briefly). This default has no event channel.
        """
        return False

    async def subscribe_events(self, patterns: Sequence[str], handler: EventHandler) -> EventSubscription:
        """Receive event batches whose routing key matches one of ``patterns`` (AMQP topic patterns:
        ``*`` one word, ``#`` any words; ``#`` alone for all), from now on, until cancelled.

        Bounded: a reader that falls behind loses the oldest batches, never the workers' time.
        A lost connection ends the subscription (``wait_lost`` returns).
        """
        raise BrokerError(f"{self.display_url}: this backend has no event channel")

    async def open_inbox(self, ttl: float) -> ResultInbox:
        """A new inbox for the results of tasks this caller sends, on this connection, each kept ``ttl``
        seconds at most.

        RabbitMQ's lives as long as the connection (results sent to it after are dropped);
        SQLite's is the database file's results table, readable by any later caller.
        """
        raise BrokerError(f"{self.display_url}: this backend keeps no results")

    async def publish_result(self, address: str, message_id: str, body: bytes, ttl: float) -> bool:
        """Send the result ``body`` of task message ``message_id`` to the inbox at ``address``, kept
        there at most ``ttl`` seconds; confirmed like :meth:`publish`. False when that inbox is gone
        (its caller closed or died): the result is dropped."""
        raise BrokerError(f"{self.display_url}: this backend keeps no results")

    @abc.abstractmethod
    async def get(self, queue: str) -> Delivery | None:
        """Take one message without subscribing (None if the queue is empty)."""

    @abc.abstractmethod
    async def delete(self, queue: str) -> None:
        """Delete ``queue`` and everything in it (demos and tests clean up with this)."""

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Delete every ready message of ``queue``; returns how many."""

    async def dead_letter(self, delivery: Delivery, headers: dict[str, Any]) -> None:
        """Move ``delivery`` to its dead-letter queue with ``headers`` (from
        :func:`~fairq.message.dead_letter_headers`) and the stamp of where and when, then ack it.

        The broker's own headers (its dead-letter records, delivery counts) are left
        behind (:func:`~fairq.message.republished`): the reason is in fairq's headers.
        """
        copy = wire.republished(delivery.envelope, **headers, **wire.dead_letter_stamp(delivery.queue))
        await self.publish(dead_letter_queue(delivery.queue), copy)
        await delivery.ack()
