"""Message ids come from producers: a reused id must never cost a task (docs/protocol.md, "Message ids and duplicates")."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pika
from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq.broker.topology import dead_letter_queue


def test_two_messages_with_one_id_in_flight_together_both_run(amqp: Amqp, queue: str, journal: Journal,
                                                               worker_env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    reused = uuid.uuid4().hex
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "-t", "2", "--prefetch", "fair", env=worker_env) as worker:
        for tag in ("first", "second"):
            body = json.dumps({"task": "gated", "args": [tag, str(gate)], "kwargs": {}}).encode()
            amqp.channel.basic_publish("", queue, body, pika.BasicProperties(
                delivery_mode=2, message_id=reused, content_type="application/json",
                headers={"fairq-protocol": 1, "fairq-task": "gated"}))
        # Both hold a slot at once: the second is a first delivery, so it runs although its id is in use.
        wait_for(lambda: sorted(journal.tags("start")) == ["first", "second"], what="both messages to start")
        gate.touch()
        wait_for(lambda: sorted(journal.tags("done")) == ["first", "second"], what="both messages to finish")
        wait_for(lambda: amqp.ready(queue) == 0, what="the queue to empty")
    assert amqp.ready(dead_letter_queue(queue)) == 0
    assert "came back while already handled here" not in worker.output()
