"""Declaring the delay chain of :mod:`.delays` and a queue's place at its end (docs/protocol.md lists it all).

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

from aiormq.abc import AbstractChannel
from pamqp.common import FieldValue

from . import delays
from .topology import DELAY_DELIVER_EXCHANGE, DELAY_ROUTE_EXCHANGE, DELAY_UNROUTABLE, delay_level

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
