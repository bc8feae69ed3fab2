"""Sending batches to the shared broker: what arrives, how long a batch may take, full queues."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from helpers import Amqp, wait_for

from fairq import App, Call, QueueFull
from fairq.message import CONTENT_TYPE, H_ATTEMPT, H_PROTOCOL, H_TASK, PROTOCOL_VERSION


def test_a_batch_arrives_whole_with_every_property_a_single_send_sets(broker_url: str, amqp: Amqp,
                                                                       queue: str) -> None:
    app = App(broker=broker_url)
    try:
        single = app.send("m.f", [0], queue=queue)
        ids = app.send_many("m.f", [Call((i,), {"k": str(i)}) for i in range(1, 300)], queue=queue)
    finally:
        app.close()
    assert len(set(ids)) == 299 and single not in ids
    wait_for(lambda: amqp.ready(queue) == 300, what="300 ready messages")
    received = amqp.drain(queue)
    assert [p.message_id for p, _ in received] == [single, *ids]  # in order
    for n, (props, body) in enumerate(received):
        assert json.loads(body) == {"task": "m.f", "args": [n], "kwargs": {"k": str(n)} if n else {}}
        fairq_headers = {k: v for k, v in props.headers.items() if not k.startswith("x-")}  # the broker adds its own
        assert fairq_headers == {H_PROTOCOL: PROTOCOL_VERSION, H_TASK: "m.f", H_ATTEMPT: 0}
        assert props.content_type == CONTENT_TYPE and props.delivery_mode == 2
        assert uuid.UUID(props.message_id).version == 4
        assert abs(props.timestamp - time.time()) < 120


def test_a_batch_longer_than_the_send_timeout_finishes_while_it_keeps_moving(broker_url: str, amqp: Amqp,
                                                                            queue: str) -> None:
    count, timeout = 30_000, 1.0
    app = App(broker=broker_url, send_timeout=timeout)
    try:
        app.send("m.f", [-1], queue=queue)  # connection and declaration
        started = time.monotonic()
        ids = app.send_many("m.f", [Call((i,)) for i in range(count)], queue=queue)
        took = time.monotonic() - started
    finally:
        app.close()
    assert len(ids) == count
    assert took > timeout  # the timeout bounds a stall, not the batch (30,000 confirms take seconds)
    wait_for(lambda: amqp.ready(queue) == count + 1, what="every message of the batch ready")


def test_a_batch_to_a_full_queue_says_how_many_were_accepted(broker_url: str, amqp: Amqp, queue: str) -> None:
    app = App(broker=broker_url, queue_kind="classic")  # classic queues enforce max-length exactly
    app.queue(queue, max_length=100)
    try:
        with pytest.raises(QueueFull, match="100 of 150 accepted"):
            app.send_many("m.f", [Call((i,)) for i in range(150)], queue=queue)
        assert app.send("m.g", [1], queue=queue + ".other")  # the producer goes on
    finally:
        app.close()
        amqp.delete(queue + ".other", queue + ".other.dlq")
    wait_for(lambda: amqp.ready(queue) == 100, what="the queue full at 100")


def test_send_with_a_queue_sends_the_task_there_instead_of_its_own(broker_url: str, amqp: Amqp, queue: str) -> None:
    app = App(broker=broker_url)
    own = queue + ".own"

    @app.task(name="m.routed", queue=own)
    def routed(n: int) -> None: ...

    try:
        message_id = routed.send_with((7,), queue=queue)
    finally:
        app.close()
    wait_for(lambda: amqp.ready(queue) == 1, what="the task in the queue named at send")
    [(props, body)] = amqp.drain(queue)
    assert props.message_id == message_id and json.loads(body)["args"] == [7]
    assert not amqp.exists(own)  # the task's own queue was never even declared
