"""Names of the queues and exchanges fairq builds around a work queue. Built here and nowhere else."""

from __future__ import annotations

DLQ_SUFFIX = ".dlq"
DELAY_PREFIX = "fairq.delay."
#: Topic exchange at the end of the delay chain; each work queue that receives delayed messages binds to it.
DELAY_DELIVER_EXCHANGE = DELAY_PREFIX + "deliver"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter sibling of ``queue``."""
    return queue + DLQ_SUFFIX


def is_dead_letter_queue(queue: str) -> bool:
    return queue.endswith(DLQ_SUFFIX)


def delay_level(level: int) -> str:
    """Name of delay level ``level``: both its exchange and its queue (a message waits 2**level units there)."""
    return f"{DELAY_PREFIX}{level:02d}"


def is_internal(queue: str) -> bool:
    """Queues fairq keeps for itself (the delay levels), hidden from listings."""
    return queue.startswith(DELAY_PREFIX)
