"""Which deliveries a worker may settle with a result it already has, instead of running them.

Only a *redelivery* (the broker's ``redelivered`` flag, or ``Delivery.redeliveries``
above 0) of a message id this worker is running or has finished on a lost
channel. A first delivery always runs, even if its id is in use: message ids come
from producers, and one that reuses ids must not lose tasks (docs/protocol.md,
"Message ids and duplicates").
"""

from __future__ import annotations

import logging

from ..broker import Delivery

log = logging.getLogger("fairq.worker")


def is_redelivery(delivery: Delivery) -> bool:
    return delivery.redelivered or delivery.redeliveries > 0


def suppressed(worker: str, message_id: str, outcome: str) -> None:
    """One line per suppressed redelivery: it is acked (or retried, dead-lettered) without running."""
    log.warning("%s: %s came back while already handled here (redelivered after this worker ran it); "
                "applying its result (%s) instead of running it again", worker, message_id, outcome)
