"""Hostile messages among valid tasks, on every backend: each hostile one dead-lettered with a reason.

The mix of tests/faults/test_hostile.py (RabbitMQ, 10,000 of them, for RELIABILITY.md), smaller, published
through fairq's seam: each backend must store and hand back whatever headers and bodies it was given.
"""

from __future__ import annotations

import random

from fairq.broker.topology import dead_letter_queue
from fairq.deadletters import UNKNOWN
from tests.support.backends import Harness, ProcessWorkers
from tests.support.hostile import hostile_messages
from tests.support.workers import Journal, wait_for

HOSTILE = 200
VALID = 20


def test_hostile_messages_are_dead_lettered_with_a_reason_and_every_valid_task_runs_once(
        backend: Harness, queue: str, journal: Journal) -> None:
    tags = [f"v{i}" for i in range(VALID)]
    valid = iter(tags)
    with backend.workers(queue, journal) as workers:
        for i, (body, headers, content_type) in enumerate(hostile_messages(random.Random(20261126), HOSTILE, huge=2)):
            backend.publish(queue, body, headers=headers, content_type=content_type)
            if i % 10 == 0 and (tag := next(valid, None)) is not None:
                backend.send(queue, "record", tag)
        for tag in valid:
            backend.send(queue, "record", tag)
        wait_for(lambda: backend.ready(dead_letter_queue(queue)) == HOSTILE and len(journal.tags("done")) == VALID,
                 timeout=120, interval=0.2, what="every message settled")
        assert workers.alive()
        if isinstance(workers, ProcessWorkers):
            assert workers.count(" died with ") == 0
    letters = backend.dead_letters(queue)
    reasons = {letter.reason for letter in letters}
    assert len(letters) == HOSTILE and UNKNOWN not in reasons, reasons
    assert sorted(journal.tags("done")) == sorted(tags)  # each valid task once, none lost
