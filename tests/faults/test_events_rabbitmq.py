"""Events on RabbitMQ under pressure (private nodes): an alarm never stalls a worker's acks, a listener's queue
exists only while it listens and stays capped while it stalls."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pika
import pytest

import fairq
from fairq import message as wire
from fairq.broker import QueueSpec, open_backend
from fairq.broker.rabbitmq.events import EXCHANGE, LISTENER_MAX_LENGTH
from fairq.events import EventOptions, WorkerHeartbeat, listen
from fairq.loopthread import LoopThread
from fairq.worker.policy import Prefetch
from fairq.worker.worker import Worker
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.workers import wait_for

pytestmark = pytest.mark.faults

app = fairq.App()


@app.task(name="ok")
def ok(n: int) -> int:
    return n


async def until(condition: object, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_memory_alarm_stops_events_but_never_a_workers_acks(private_rabbit: PrivateRabbitNode) -> None:
    """During an alarm RabbitMQ blocks every connection that publishes, and then reads nothing from it, acks
    included. Events go on a connection of their own, so the worker's consuming connection is never blocked."""
    queue = "alarm.events"

    async def main() -> None:
        backend = open_backend(private_rabbit.url)
        producer = backend.broker()
        await producer.connect()
        await producer.declare(QueueSpec(queue))
        for i in range(40):
            await producer.publish(queue, wire.encode_task("ok", [i], {}, max_bytes=1 << 20))
        await producer.close()
        private_rabbit.rabbitmqctl("set_vm_memory_high_watermark", "0.000001")
        try:
            async with listen(backend, ["worker.heartbeat"]) as beats:
                worker = Worker(backend=backend, queues=[QueueSpec(queue)], tasks=app.tasks, name="alarmed",
                                prefetch=Prefetch.parse("fair"), events=EventOptions(heartbeat=0.2))
                run = asyncio.ensure_future(worker.run())
                await until(lambda: worker.snapshot().counters.succeeded == 40, "every task run")
                # Acked, not only run: the broker read every ack of the worker's connection.
                await asyncio.to_thread(wait_for, lambda: private_rabbit.queue_info(queue, "messages")["messages"] == 0,
                                        30, 0.2, "the queue to be empty")
                await until(lambda: worker.events is not None and worker.events.dropped > 0, "events refused")
                assert worker.broker.is_blocked() is False
                private_rabbit.rabbitmqctl("set_vm_memory_high_watermark", "0.4")

                async def heartbeat() -> WorkerHeartbeat:
                    while True:
                        event = await beats.get(timeout=30)
                        assert event is not None, "no heartbeat after the alarm cleared"
                        if isinstance(event, WorkerHeartbeat):
                            return event

                beat = await asyncio.wait_for(heartbeat(), 60)
                assert beat.counters.succeeded == 40 and beat.dropped > 0  # it says how many it dropped
                worker.stop()
                await asyncio.wait_for(run, 30)
        finally:
            private_rabbit.rabbitmqctl("set_vm_memory_high_watermark", "0.4")

    asyncio.run(main())


def listener_queues(node: PrivateRabbitNode) -> list[dict[str, object]]:
    return [q for q in node.list_queues("name", "messages_ready", "exclusive", "auto_delete")
            if str(q["name"]).startswith("amq.gen-")]


def test_a_listeners_queue_exists_only_while_it_listens_and_stays_capped_while_it_stalls(
        private_rabbit: PrivateRabbitNode) -> None:
    backend = open_backend(private_rabbit.url)
    key = f"test.{uuid.uuid4().hex[:8]}"

    async def publish_without_a_listener() -> None:
        broker = backend.broker()
        await broker.connect()
        for _ in range(10):
            assert broker.publish_event(key, b"{}")  # taken, and dropped by the broker: nobody is bound
        await broker.close()

    asyncio.run(publish_without_a_listener())
    assert listener_queues(private_rabbit) == []

    loop = LoopThread("stalled-listener")
    stream = loop.run(listen(backend, [key]).__aenter__())
    try:
        (queue,) = listener_queues(private_rabbit)
        assert queue["exclusive"] is True and queue["auto_delete"] is True
        stall = threading.Event()
        loop._ensure().call_soon_threadsafe(stall.wait, 60)  # the listener's loop reads nothing now
        try:
            connection = pika.BlockingConnection(pika.URLParameters(private_rabbit.url))
            channel = connection.channel()
            channel.confirm_delivery()
            for i in range(LISTENER_MAX_LENGTH + 500):
                channel.basic_publish(EXCHANGE, key, f'{{"n": {i}}}'.encode())
            connection.close()
            wait_for(lambda: [int(q["messages_ready"]) for q in listener_queues(private_rabbit)] == [LISTENER_MAX_LENGTH],
                     30, 0.2, "the stalled listener's queue at its cap")
        finally:
            stall.set()
        wait_for(lambda: stream.stats.undecodable >= LISTENER_MAX_LENGTH, 30, 0.1, "the listener reading again")
    finally:
        loop.run(stream.close())
        loop.stop()
    wait_for(lambda: listener_queues(private_rabbit) == [], 30, 0.2, "the listener's queue gone with it")
