"""The delivery limit: a message whose workers keep dying on it is dead-lettered, not run again.

Each backend counts how often it handed a message out unsettled
(:attr:`~fairq.broker.base.Delivery.redeliveries`, in its own way); the worker only
compares that count with its limit.
"""

from __future__ import annotations

from .. import message as wire
from ..broker import Delivery
from .settlement import Settlement, dead


def over_limit(delivery: Delivery, limit: int, worker: str) -> Settlement | None:
    """A dead letter for a message handed out ``limit`` times before; None: deliver it."""
    count = delivery.redeliveries
    if count < limit:
        return None
    return dead(wire.REASON_DELIVERY_LIMIT, worker,
                detail=f"delivered {count + 1} times without being settled (limit {limit})")
