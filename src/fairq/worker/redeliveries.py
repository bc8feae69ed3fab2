"""RabbitMQ knowledge the worker still holds, in one place until the broker seam takes it over.

Two things here are RabbitMQ's, not fairq's:

- **Classic queues keep no delivery count.** A quorum queue says how often it handed a
  message out (``Delivery.delivery_count``); a classic queue only sets ``redelivered``.
  So the worker counts for it: a redelivered copy goes back to the end of the queue
  with ``fairq-redeliveries`` + 1 and the original is acked.
- **RabbitMQ's consumer timeout** closes a channel whose delivery stayed unacked too
  long, and says so only in the close text.

Next (issue 13, the seam): the RabbitMQ backend's consume path does the counted copy
itself and every backend answers ``Delivery.redeliveries`` (so :func:`over_limit` only
compares it with the limit), and its ``wait_lost()`` returns a typed
``errors.ConsumerTimedOut`` carrying the advice below (so :func:`is_consumer_timeout`
and :data:`CONSUMER_TIMEOUT_ADVICE` go). This module then shrinks to the comparison.
"""

from __future__ import annotations

from .. import message as wire
from ..broker import Delivery
from ..errors import ChannelClosed
from .settlement import Outcome, Settlement, dead

CONSUMER_TIMEOUT_ADVICE = (
    "RabbitMQ's consumer_timeout closed the channel while a task ran longer than it allows; the broker "
    "requeued the delivery. This worker will not run it twice: a redelivered copy that comes back here "
    "waits for the running task's result. Raise consumer_timeout in rabbitmq.conf above your longest task "
    "(milliseconds), or on RabbitMQ 3.12+ give the task a time_limit so fairq sets x-consumer-timeout on "
    "new queues.")


def is_consumer_timeout(exc: BaseException) -> bool:
    """Was the session lost to RabbitMQ's consumer timeout? (Only the close text tells.)"""
    text = str(exc)
    return isinstance(exc, ChannelClosed) and ("acknowledgement" in text and "timed out" in text)


def over_limit(delivery: Delivery, limit: int, worker: str) -> Settlement | None:
    """Dead-letter a message whose workers keep dying on it; on classic queues, count returns ourselves
    (a ``REQUEUE`` settlement: a counted copy to the back). None: deliver it."""
    count = delivery.delivery_count
    if count is None and delivery.redelivered:
        count = wire.int_header(delivery.envelope.headers, wire.H_REDELIVERIES) + 1
        if count < limit:
            return Settlement(Outcome.REQUEUE, {wire.H_REDELIVERIES: count},
                              note=f"redelivered ({count} of {limit}): counted copy to the back")
    if count is not None and count >= limit:
        return dead(wire.REASON_DELIVERY_LIMIT, worker,
                    detail=f"delivered {count + 1} times without being settled (limit {limit})")
    return None
