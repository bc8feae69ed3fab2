"""What fairq declares on RabbitMQ: a queue's arguments, its dead-letter queue, and the delay chain of
:mod:`.delays` with each queue's place at its end (docs/protocol.md lists it all).

    fairq.delay.28 … fairq.delay.00   a topic exchange and a quorum queue per level
    fairq.delay.deliver               level 0's way out; one binding "#" on to …
    fairq.delay.route                 … where each queue binds ("*" × 29 + its name);
                                      alternate-exchange: fairq.delay.unroutable
    fairq.delay.unroutable            fanout exchange → durable queue: delays that found no queue

Without the alternate exchange a delayed message whose queue is not bound when
its delay ends is unroutable at the end of the chain: with at-least-once
dead-lettering RabbitMQ keeps it inside level 0's queue, retried every few
minutes, invisible, until a binding appears (for ever, for a deleted queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from aiormq.abc import AbstractChannel
from pamqp.common import FieldValue

from ...errors import ChannelClosed
from ..base import QueueSpec
from ..topology import DELAY_DELIVER_EXCHANGE, DELAY_ROUTE_EXCHANGE, DELAY_UNROUTABLE, dead_letter_queue, delay_level
from . import delays
from .options import QueueKind, consumer_timeout_ms, kind_of, replicas_of

log = logging.getLogger("fairq.broker")

#: Effectively no limit, but explicit, so RabbitMQ 4's default of 20 does not apply to dead letters.
DLQ_DELIVERY_LIMIT = 2**30

#: Looking at unroutable delays (a get and a requeue) must never drop them, on RabbitMQ 4's default limit of 20.
UNROUTABLE_ARGUMENTS: dict[str, FieldValue] = {"x-queue-type": "quorum", "x-delivery-limit": 2**30}
ROUTE_ARGUMENTS: dict[str, FieldValue] = {"alternate-exchange": DELAY_UNROUTABLE}


async def declare_chain(channel: AbstractChannel) -> None:
    """Every exchange, queue and binding of the chain, idempotent (the same arguments every time).

    Sent without waiting for each reply, so the whole chain costs one round trip: a
    refusal closes the channel, and the passive check at the end then raises it.
    Exchanges first: an exchange-to-exchange binding needs both ends to exist.
    """
    for level in range(delays.LEVELS):
        await channel.exchange_declare(delay_level(level), exchange_type="topic", durable=True, nowait=True)
    await channel.exchange_declare(DELAY_DELIVER_EXCHANGE, exchange_type="topic", durable=True, nowait=True)
    await channel.exchange_declare(DELAY_UNROUTABLE, exchange_type="fanout", durable=True, nowait=True)
    await channel.exchange_declare(DELAY_ROUTE_EXCHANGE, exchange_type="topic", durable=True,
                                   arguments=ROUTE_ARGUMENTS, nowait=True)
    await channel.queue_declare(DELAY_UNROUTABLE, durable=True, arguments=UNROUTABLE_ARGUMENTS, nowait=True)
    await channel.queue_bind(DELAY_UNROUTABLE, DELAY_UNROUTABLE, routing_key="", nowait=True)
    for level in range(delays.LEVELS):
        name = delay_level(level)
        await channel.queue_declare(name, durable=True, arguments=delays.level_queue_arguments(level), nowait=True)
        into, onward = delays.level_patterns(level)
        await channel.queue_bind(name, name, routing_key=into, nowait=True)
        await channel.exchange_bind(delays.next_exchange(level), name, routing_key=onward, nowait=True)
    await channel.exchange_bind(DELAY_ROUTE_EXCHANGE, DELAY_DELIVER_EXCHANGE, routing_key="#", nowait=True)
    await channel.exchange_declare(DELAY_ROUTE_EXCHANGE, passive=True)  # the round trip


async def bind_destination(channel: AbstractChannel, queue: str) -> None:
    """Bind ``queue`` to the end of the chain, and drop the binding older fairq made.

    The old binding, straight on ``fairq.delay.deliver``, would now deliver each
    delayed message twice (once through ``fairq.delay.route``). New binding first:
    in between, a message can arrive twice, never not at all.
    """
    key = delays.destination_pattern(queue)
    await channel.queue_bind(queue, DELAY_ROUTE_EXCHANGE, routing_key=key, nowait=True)
    await channel.queue_unbind(queue, DELAY_DELIVER_EXCHANGE, routing_key=key)  # the round trip


def queue_arguments(spec_: QueueSpec) -> dict[str, FieldValue] | None:
    """The ``x-`` arguments fairq declares a new queue with (its type from the spec's options)."""
    kind = kind_of(spec_)
    if kind is QueueKind.PLAIN:
        return None
    args: dict[str, FieldValue] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(spec_.name),
    }
    if kind is QueueKind.QUORUM:
        args["x-queue-type"] = "quorum"
        if spec_.delivery_limit is not None:
            args["x-delivery-limit"] = spec_.delivery_limit
        _place(args, spec_)
    if spec_.max_length is not None:
        args["x-max-length"] = spec_.max_length
        args["x-overflow"] = "reject-publish"
    timeout = consumer_timeout_ms(spec_)
    if timeout is not None:
        args["x-consumer-timeout"] = timeout
    return args


def _place(args: dict[str, FieldValue], spec_: QueueSpec) -> None:
    replicas = replicas_of(spec_)
    if replicas is not None:
        args["x-quorum-initial-group-size"] = replicas


def dead_letter_arguments(spec_: QueueSpec) -> dict[str, FieldValue] | None:
    """A dead-letter queue is the same type as its queue, on as many replicas. On quorum, an explicit,
    effectively unlimited delivery limit: RabbitMQ 4.0+ defaults to 20, and every `fairq dlq list`
    returns each dead letter once — looking at dead letters must never drop them."""
    if kind_of(spec_) is QueueKind.QUORUM:
        args: dict[str, FieldValue] = {"x-queue-type": "quorum", "x-delivery-limit": DLQ_DELIVERY_LIMIT}
        _place(args, spec_)
        return args
    return None


#: Opens a channel for one piece of topology work and closes it afterwards, errors translated.
ChannelFor = Callable[[str], AbstractAsyncContextManager[AbstractChannel]]


class Declarer:
    """The declarations of one connection: queues passive-first; the delay chain once and each queue's
    binding once, at the first delayed publish or consumer (a producer that never delays never declares it)."""

    def __init__(self, channel_for: ChannelFor, exists: Callable[[str], Awaitable[bool]]) -> None:
        self._channel_for = channel_for
        self._exists = exists
        self._lock: asyncio.Lock | None = None
        self._bound: set[str] = set()
        self._chain = False

    def reset(self) -> None:
        """Forget what was declared: a new connection checks again."""
        self._bound.clear()
        self._chain = False

    async def declare(self, spec: QueueSpec) -> None:
        """The queue and its dead-letter queue; the delay chain waits for a delayed publish or a consumer."""
        await self._declare_queue(spec.name, queue_arguments(spec))
        await self._declare_queue(dead_letter_queue(spec.name), dead_letter_arguments(spec))

    async def _declare_queue(self, name: str, arguments: dict[str, FieldValue] | None) -> None:
        """Passive first, so an existing queue (classic, or other arguments) is used as it is."""
        if await self._exists(name):
            return
        try:
            async with self._channel_for(f"declare queue {name!r}") as channel:
                await channel.queue_declare(name, durable=True, arguments=arguments)
        except ChannelClosed:
            # Lost a race with another declarer using other arguments: theirs stands.
            if not await self._exists(name):
                raise

    async def ensure_delays(self, queue: str) -> None:
        """Declare the delay chain (once per connection) and bind ``queue`` to its end (once per queue)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if queue in self._bound:
                return
            async with self._channel_for(f"declare delays for {queue!r}") as channel:
                if not self._chain:
                    await declare_chain(channel)
                    self._chain = True
                await bind_destination(channel, queue)
            self._bound.add(queue)

    async def bind_for_delays(self, queue: str) -> None:
        """Ready ``queue`` for delayed messages from anyone, as a consumer starts on it: a producer in
        another language delays onto a queue that only fairq's workers declare (docs/protocol.md).

        Best effort: a broker that refuses the delay chain must not stop a worker
        from consuming; a delayed send to the queue will raise the refusal.
        """
        problem = delays.undeliverable(queue)
        if problem:
            log.debug("queue %r cannot receive delayed messages (%s)", queue, problem)
            return
        try:
            await self.ensure_delays(queue)
        except ChannelClosed as exc:
            log.warning("delayed messages cannot reach %r: %s", queue, exc)
