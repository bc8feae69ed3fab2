"""Names of the queues fairq builds around a work queue. Built here and nowhere else."""

from __future__ import annotations

DLQ_SUFFIX = ".dlq"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter sibling of ``queue``."""
    return queue + DLQ_SUFFIX


def is_dead_letter_queue(queue: str) -> bool:
    return queue.endswith(DLQ_SUFFIX)
