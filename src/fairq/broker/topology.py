"""Names of the queues and exchanges fairq builds around a work queue. Built here and nowhere else."""

from __future__ import annotations

DLQ_SUFFIX = ".dlq"
DELAY_PREFIX = "fairq.delay."
#: Topic exchange at the end of the delay chain (level 0 dead-letters into it). It passes every message
#: on to :data:`DELAY_ROUTE_EXCHANGE`; older fairq bound work queues here directly.
DELAY_DELIVER_EXCHANGE = DELAY_PREFIX + "deliver"
#: Topic exchange each work queue that receives delayed messages binds to; what matches no queue goes to
#: its alternate exchange, :data:`DELAY_UNROUTABLE`. A new name, not new arguments on ``deliver``:
#: redeclaring an existing exchange with other arguments fails (406) on brokers fairq used before.
DELAY_ROUTE_EXCHANGE = DELAY_PREFIX + "route"
#: Fanout exchange and durable queue of that name: delayed messages whose queue was not bound when their
#: delay ended. Kept, never dropped; visible in listings.
DELAY_UNROUTABLE = DELAY_PREFIX + "unroutable"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter sibling of ``queue``."""
    return queue + DLQ_SUFFIX


def is_dead_letter_queue(queue: str) -> bool:
    return queue.endswith(DLQ_SUFFIX)


def delay_level(level: int) -> str:
    """Name of delay level ``level``: both its exchange and its queue (a message waits 2**level units there)."""
    return f"{DELAY_PREFIX}{level:02d}"


def is_internal(queue: str) -> bool:
    """Queues fairq keeps for itself (the delay levels), hidden from listings (not the unroutable delays)."""
    return queue.startswith(DELAY_PREFIX) and queue != DELAY_UNROUTABLE
