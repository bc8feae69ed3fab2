"""What a RabbitMQ consumer hands out: deliveries (with what the broker recorded about them) and consumers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiormq.abc import AbstractChannel, DeliveredMessage

from ... import message as wire
from ...errors import BrokerError
from ...message import Envelope
from ..base import BrokerDeath, Consumer, Delivery
from .acks import AckBatcher
from .errors import translated
from .properties import to_envelope

log = logging.getLogger("fairq.broker")


#: A quorum queue's count of the times it handed a message out before.
H_DELIVERY_COUNT = "x-delivery-count"


async def count_redelivery(delivery: RabbitDelivery, publish: Callable[[str, Envelope], Awaitable[None]]) -> None:
    """Count an :attr:`~RabbitDelivery.uncounted` redelivery: a confirmed copy at the back of its queue
    carrying the count, then ack the original (a crash in between duplicates, never loses).

    If the copy cannot be published the original stays unacked: the broker gives it back
    once this channel goes, as for any delivery whose worker died.
    """
    copy = wire.republished(delivery.envelope, **{wire.H_REDELIVERIES: delivery.redeliveries})
    try:
        await publish(delivery.queue, copy)
    except BrokerError as exc:
        log.warning("could not count redelivery %s of %s from %r (%s); the broker will redeliver it",
                    delivery.redeliveries, delivery.envelope.message_id, delivery.queue, exc)
        return
    log.info("redelivered %s from %r (%d time(s) now): counted copy to the back", delivery.envelope.message_id,
             delivery.queue, delivery.redeliveries)
    await delivery.ack()


def death_of(headers: dict[str, Any]) -> BrokerDeath | None:
    """Why RabbitMQ itself dead-lettered a message (``x-death``, newest entry first), or None if it did not.

    fairq's own dead letters carry their reason in fairq headers; this is for the
    ones the broker made (a quorum queue's delivery limit, an expiry, an overflow).
    """
    deaths = headers.get("x-death")
    latest: dict[str, Any] = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    reason = latest.get("reason") or headers.get("x-last-death-reason") or headers.get("x-first-death-reason")
    if not reason:
        return None
    queue, at = latest.get("queue"), latest.get("time")
    return BrokerDeath(
        reason=broker_reason(_text(reason)),
        queue=_text(queue) if queue else None,
        at=at.isoformat() if isinstance(at, datetime) else (_text(at) if at else None),
    )


def broker_reason(reason: str) -> str:
    """RabbitMQ's reason in fairq's words: ``delivery_limit`` → ``delivery limit``."""
    return wire.REASON_DELIVERY_LIMIT if reason == "delivery_limit" else reason.replace("_", " ")


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


class RabbitDelivery(Delivery):
    """A delivery and what RabbitMQ says about it.

    Its :attr:`redeliveries`: a quorum queue counts returns itself (``x-delivery-count``); a
    classic queue only sets ``redelivered``, so the consumer counts for it: a redelivered
    message without a broker count is not handed on but copied to the back of its queue
    with ``fairq-redeliveries`` + 1, then acked (:func:`count_redelivery`), and that copy
    is the one a worker gets.
    """

    __slots__ = ("envelope", "queue", "redelivered", "redeliveries", "uncounted", "_acks", "_tag")

    def __init__(self, queue: str, message: DeliveredMessage, acks: AckBatcher) -> None:
        self.envelope = to_envelope(message)
        self.queue = queue
        headers = self.envelope.headers
        returned = bool(getattr(message.delivery, "redelivered", False))
        broker_count = wire.as_count(headers.get(H_DELIVERY_COUNT))
        #: Redelivered, and no broker count to say how often: a classic queue's (see :func:`count_redelivery`).
        self.uncounted = returned and broker_count is None
        if broker_count is None:
            broker_count = wire.int_header(headers, wire.H_REDELIVERIES) + (1 if returned else 0)
        self.redeliveries = broker_count
        self.redelivered = returned or broker_count > 0  # a counted copy is a redelivery too
        self._acks = acks
        self._tag = message.delivery_tag or 0
        acks.delivered(self._tag)

    @property
    def alive(self) -> bool:
        return not self._acks.channel.is_closed

    @property
    def death(self) -> BrokerDeath | None:
        return death_of(self.envelope.headers)  # read when asked: the hot path never looks

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
