"""The delay chain's end: every queue fairq declares is bound there, and what finds no queue is kept.

Delayed messages are published here with pika, exactly as docs/protocol.md tells a
producer in another language to, so these tests also hold protocol.md to its word.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from helpers import TASKS, Amqp, Journal, unique, wait_for, worker_process

from fairq import App

FIRST_LEVEL = "fairq.delay.28"
ROUTE = "fairq.delay.route"
DELIVER = "fairq.delay.deliver"
UNROUTABLE = "fairq.delay.unroutable"


def delay_key(seconds: float, queue: str) -> str:
    """protocol.md: the delay in units of 100 ms, rounded up, as 29 binary words, then the queue name."""
    return ".".join(format(math.ceil(seconds * 10), "029b")) + "." + queue


def publish_delayed(amqp: Amqp, queue: str, seconds: float, task: str, args: list[Any]) -> str:
    message_id = uuid.uuid4().hex
    channel = amqp._fresh()
    channel.confirm_delivery()
    channel.basic_publish(FIRST_LEVEL, delay_key(seconds, queue), json.dumps({"task": task, "args": args}),
                          pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                               message_id=message_id, headers={"fairq-protocol": 1}),
                          mandatory=True)
    return message_id


def take_unroutable(amqp: Amqp, message_id: str, timeout: float = 20.0) -> tuple[Any, bytes]:
    """Wait for ``message_id`` in fairq.delay.unroutable and take it; other tests' messages stay."""

    def look() -> tuple[Any, bytes] | None:
        channel = amqp._fresh()
        found, others = None, []
        while True:
            method, props, body = channel.basic_get(UNROUTABLE, auto_ack=False)
            if method is None:
                break
            if props.message_id == message_id:
                channel.basic_ack(method.delivery_tag)
                found = (props, body)
            else:
                others.append(method.delivery_tag)
        for tag in others:
            channel.basic_nack(tag, requeue=True)
        return found

    return wait_for(look, timeout, interval=0.1, what=f"{message_id} in {UNROUTABLE}")


@pytest.fixture
def vhost_amqp(private_vhost: str) -> Iterator[Amqp]:
    client = Amqp(private_vhost)
    yield client
    client.close()


def test_a_delayed_message_whose_queue_lost_its_binding_is_kept_not_dropped(private_vhost: str,
                                                                            vhost_amqp: Amqp) -> None:
    amqp, queue = vhost_amqp, unique()
    app = App(broker=private_vhost)
    try:
        app.send("m.f", ["bound"], queue=queue, delay=0.1)
        wait_for(lambda: amqp.ready(queue) == 1, what="the first delayed message")
        for exchange in (ROUTE, DELIVER):  # where fairq binds it now, and where it did before
            amqp._fresh().queue_unbind(queue, exchange, "*." * 29 + queue)
        message_id = app.send("m.f", ["unbound", "é"], queue=queue, delay=0.3)
    finally:
        app.close()
    props, body = take_unroutable(amqp, message_id)
    assert json.loads(body) == {"task": "m.f", "args": ["unbound", "é"], "kwargs": {}}
    assert props.headers["fairq-protocol"] == 1 and props.headers["fairq-task"] == "m.f"
    assert "fairq.delay.00" in [death["queue"] for death in props.headers["x-death"]]  # it went the whole way
    assert amqp.ready(queue) == 1


def test_a_delay_to_a_queue_nobody_declared_is_kept_with_its_body(private_vhost: str, vhost_amqp: Amqp) -> None:
    amqp, queue = vhost_amqp, unique()
    app = App(broker=private_vhost)
    try:
        app.send("m.f", [0], queue=queue, delay=0.1)  # the chain exists (a worker or a send declares it)
    finally:
        app.close()
    nowhere = unique("nowhere")
    message_id = publish_delayed(amqp, nowhere, 0.5, "m.f", [1, {"k": "v"}])
    props, body = take_unroutable(amqp, message_id)
    assert json.loads(body) == {"task": "m.f", "args": [1, {"k": "v"}]}
    assert not amqp.exists(nowhere)


def test_a_foreign_producer_can_delay_onto_a_queue_a_fresh_worker_consumes(private_vhost: str, vhost_amqp: Amqp,
                                                                           journal: Journal) -> None:
    amqp, queue = vhost_amqp, unique()
    env = {"FAIRQ_TEST_JOURNAL": str(journal.path), "FAIRQ_BROKER_URL": private_vhost}
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=env):
        sent = time.time()
        publish_delayed(amqp, queue, 0.5, "record", ["from-elsewhere"])  # a 404 if the worker declared no chain
        wait_for(lambda: "from-elsewhere" in journal.tags("done"), what="the foreign delayed task")
    assert journal.times("start", "from-elsewhere")[0] >= sent + 0.5
    assert amqp.ready(UNROUTABLE) == 0


def test_a_queue_bound_the_old_way_moves_to_the_new_binding_and_gets_each_message_once(
        private_vhost: str, vhost_amqp: Amqp) -> None:
    """Older fairq bound queues straight to fairq.delay.deliver, an exchange whose arguments cannot change."""
    amqp, queue = vhost_amqp, unique()
    channel = amqp._fresh()
    channel.exchange_declare(DELIVER, "topic", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    old_key = "*." * 29 + queue
    channel.queue_bind(queue, DELIVER, old_key)
    app = App(broker=private_vhost)
    try:
        app.send("m.f", ["declared"], queue=queue, delay=0.1)  # the chain and its binding, on the old topology: no 406
    finally:
        app.close()
    wait_for(lambda: amqp.ready(queue) == 1, what="the delayed message, once")
    channel.confirm_delivery()
    channel.basic_publish(DELIVER, delay_key(0, queue), b"{}", mandatory=True)
    # Confirmed once routed to every queue it matched: a second copy would be there already.
    wait_for(lambda: amqp.ready(queue) >= 2, what="the message through the end of the chain")
    assert amqp.ready(queue) == 2 and amqp.ready(UNROUTABLE) == 0


def test_a_producer_declares_the_delay_chain_at_its_first_delayed_send_not_before(private_vhost: str,
                                                                                 vhost_amqp: Amqp) -> None:
    amqp, queue = vhost_amqp, unique()
    app = App(broker=private_vhost)
    try:
        app.send("m.f", ["now"], queue=queue)
        assert amqp.exists(queue) and not amqp.exists(UNROUTABLE)  # the chain's queues: none yet
        app.send("m.f", ["later"], queue=queue, delay=0.1)
        assert amqp.exists(UNROUTABLE) and amqp.exists(FIRST_LEVEL)
        wait_for(lambda: amqp.ready(queue) == 2, what="the delayed message through the chain")
    finally:
        app.close()
