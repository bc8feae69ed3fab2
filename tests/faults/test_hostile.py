"""10,000 hostile messages among 1,000 valid tasks on a private node: every hostile one dead-lettered with a reason.

The RabbitMQ figure for RELIABILITY.md, published over pika; tests/delivery/test_hostile.py sends a smaller mix
through fairq's seam to every backend.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pika
import pytest

from fairq import App, Call
from fairq.broker.topology import dead_letter_queue
from tests.support.hostile import Message, hostile_messages
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.reliability import Inspector, Outcome, counts, record
from tests.support.workers import TASKS, Journal, wait_for, worker_process

# Their own waits allow minutes on a loaded machine; the suite-wide 120 s would cut them short.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
QUEUE = "hostile"
HOSTILE = 10_000
VALID = 1_000


def as_pika(messages: list[Message]) -> list[tuple[bytes, pika.BasicProperties]]:
    return [(body, pika.BasicProperties(delivery_mode=2, headers=headers, content_type=content_type,
                                        message_id=None if headers is None else uuid.uuid4().hex))
            for body, headers, content_type in messages]


def test_hostile_messages_are_dead_lettered_and_valid_tasks_all_run(private_rabbit: PrivateRabbitNode,
                                                                    tmp_path: Path) -> None:
    rng = random.Random(20261126)
    journal = Journal(tmp_path / "journal")
    tags = [f"v{i}" for i in range(VALID)]
    app = App(broker=private_rabbit.url)
    app.send_many("record", [], queue=QUEUE)  # declares the queue as fairq does
    connection = pika.BlockingConnection(pika.URLParameters(private_rabbit.url))
    channel = connection.channel()
    channel.confirm_delivery()
    hostile = as_pika(hostile_messages(rng, HOSTILE, huge=10))
    valid = iter(tags)
    for i, (body, props) in enumerate(hostile):
        channel.basic_publish("", QUEUE, body, props)
        if i % 10 == 0:
            tag = next(valid, None)
            if tag is not None:
                app.send("record", [tag], queue=QUEUE)
    app.send_many("record", [Call((t,)) for t in valid], queue=QUEUE)
    connection.close()
    app.close()
    env = {"FAIRQ_BROKER_URL": private_rabbit.url, "FAIRQ_TEST_JOURNAL": str(journal.path)}
    inspector = Inspector(private_rabbit.url)
    with worker_process(str(TASKS), "-Q", QUEUE, "-p", "2", env=env, ready=2) as worker:
        wait_for(lambda: inspector.ready(dead_letter_queue(QUEUE)) == HOSTILE and len(journal.tags("done")) == VALID,
                 timeout=300, interval=0.5, what="every message settled")
        crashes = worker.count(" died with ")
    dead = inspector.drain(dead_letter_queue(QUEUE))
    inspector.close()
    reasons: dict[str, int] = {}
    for props, _ in dead:
        reason = (props.headers or {}).get("fairq-dead-reason")
        reasons[str(reason)] = reasons.get(str(reason), 0) + 1
    completed, lost, duplicates = counts(journal.tags("done"), tags)
    record(Outcome("hostile messages", f"{HOSTILE:,} hostile messages mixed with {VALID:,} valid tasks, 2 processes",
                   VALID, completed, lost, duplicates,
                   f"{len(dead):,} dead-lettered, {crashes} worker crashes; reasons: "
                   + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))))
    assert len(dead) == HOSTILE and "None" not in reasons
    assert lost == 0 and crashes == 0
