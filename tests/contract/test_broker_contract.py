"""The broker seam's promises (fairq/broker/base.py), checked against every backend.

Each backend is a factory taking a URL: RabbitMQ the shared test broker's, SQLite a
database in the test's tmp_path, memory a store of its own. Every test runs on all three.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fairq.broker import Broker, Delivery, QueueKind, QueueSpec, kind_option
from fairq.broker.memory import MemoryBroker
from fairq.broker.rabbitmq import RabbitMQBroker
from fairq.broker.sqlite import SQLiteBroker
from fairq.broker.topology import dead_letter_queue
from fairq.errors import PublishRejected
from fairq.message import Envelope

BACKENDS: dict[str, Callable[[str], Broker]] = {"rabbitmq": RabbitMQBroker, "sqlite": SQLiteBroker,
                                                "memory": MemoryBroker}


def backend_url(request: pytest.FixtureRequest, name: str) -> str:
    """Where ``name``'s broker is: only RabbitMQ needs the shared broker (``broker_url`` skips or fails)."""
    if name == "rabbitmq":
        return str(request.getfixturevalue("broker_url"))
    if name == "sqlite":
        return f"sqlite://{request.getfixturevalue('tmp_path')}/fairq.db"
    return f"memory://contract-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=sorted(BACKENDS))
def make_broker(request: pytest.FixtureRequest) -> Callable[[], Broker]:
    url = backend_url(request, request.param)
    return lambda: BACKENDS[request.param](url)


def run(make_broker: Callable[[], Broker], scenario: Callable[[Broker, str], Awaitable[Any]],
        kind: QueueKind = QueueKind.QUORUM) -> Any:
    """Run ``scenario`` with a connected broker and a fresh declared queue, then clean up."""

    async def main() -> Any:
        broker = make_broker()
        await broker.connect()
        queue = f"contract.{uuid.uuid4().hex[:10]}"
        try:
            await broker.declare(QueueSpec(queue, options=kind_option(kind)))
            return await asyncio.wait_for(scenario(broker, queue), 30)
        finally:
            cleanup = make_broker()
            await cleanup.connect()
            for q in (queue, dead_letter_queue(queue)):
                await cleanup.delete(q)
            await cleanup.close()
            await broker.close()

    return asyncio.run(main())


def env(text: str) -> Envelope:
    return Envelope(body=text.encode(), message_id=uuid.uuid4().hex)


async def collect(broker: Broker, queue: str, prefetch: int, n: int) -> list[Delivery]:
    """Consume until ``n`` deliveries are held (unacked)."""
    held: list[Delivery] = []
    enough = asyncio.Event()

    async def handler(d: Delivery) -> None:
        held.append(d)
        if len(held) >= n:
            enough.set()

    consumer = await broker.consume(queue, prefetch, handler)
    await enough.wait()
    await consumer.cancel()
    return held


@pytest.mark.parametrize("kind", [QueueKind.QUORUM, QueueKind.CLASSIC, QueueKind.PLAIN])
def test_published_messages_arrive_with_body_and_properties(make_broker: Callable[[], Broker], kind: QueueKind) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        sent = Envelope(body=b"payload", headers={"fairq-protocol": 1, "h": "v"}, message_id="m1",
                        content_type="application/json")
        await broker.publish(queue, sent)
        got = await broker.get(queue)
        assert got is not None
        assert got.envelope.body == b"payload" and got.envelope.headers["h"] == "v"
        assert got.envelope.message_id == "m1" and got.envelope.content_type == "application/json"
        assert got.envelope.persistent and not got.redelivered
        await got.ack()
        assert await broker.get(queue) is None

    run(make_broker, scenario, kind)


def test_publishing_to_a_missing_queue_raises_instead_of_dropping(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        with pytest.raises(PublishRejected):
            await broker.publish(queue + ".missing", env("lost?"))
        await broker.publish(queue, env("still works"))  # the publisher survives the refusal
        stats = await broker.stats(queue)
        assert stats is not None and stats.ready == 1

    run(make_broker, scenario)


@pytest.mark.parametrize("prefetch", [1, 3])
def test_a_consumer_never_holds_more_than_its_prefetch(make_broker: Callable[[], Broker], prefetch: int) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        for i in range(10):
            await broker.publish(queue, env(str(i)))
        held = await collect(broker, queue, prefetch, prefetch)
        # give the broker every chance to over-deliver, observed by the queue's own count
        other = make_broker()
        await other.connect()
        stats = await other.stats(queue)
        await other.close()
        assert len(held) == prefetch
        assert stats is not None and stats.ready == 10 - prefetch

    run(make_broker, scenario)


def test_requeue_hands_a_message_back_for_anyone(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        await broker.publish(queue, env("again"))
        first = await broker.get(queue)
        assert first is not None
        await first.requeue()
        second = await broker.get(queue)
        assert second is not None and second.envelope.body == b"again" and second.redelivered
        await second.ack()

    run(make_broker, scenario)


def test_unacked_messages_are_redelivered_when_the_connection_dies(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        await broker.publish(queue, env("survives"))
        doomed = make_broker()
        await doomed.connect()
        held = await doomed.get(queue)
        assert held is not None
        await doomed.close()  # no ack
        again = await broker.get(queue)
        assert again is not None and again.envelope.body == b"survives" and again.redelivered
        await again.ack()

    run(make_broker, scenario)


def test_dead_letter_moves_the_message_with_reason_headers(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        await broker.publish(queue, env("poison"))
        got = await broker.get(queue)
        assert got is not None
        await broker.dead_letter(got, {"fairq-dead-reason": "test"})
        assert await broker.get(queue) is None
        dead = await broker.get(dead_letter_queue(queue))
        assert dead is not None and dead.envelope.body == b"poison"
        assert dead.envelope.headers["fairq-dead-reason"] == "test"
        assert dead.envelope.headers["fairq-queue"] == queue
        await dead.ack()

    run(make_broker, scenario)


def test_an_existing_queue_is_used_as_it_is_whatever_its_type(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        # the queue exists as PLAIN (classic, no arguments); asking for quorum must not fail
        await broker.declare(QueueSpec(queue, max_length=5, options=kind_option(QueueKind.QUORUM)))
        await broker.publish(queue, env("fine"))
        stats = await broker.stats(queue)
        assert stats is not None and stats.ready == 1
        assert await broker.purge(queue) == 1

    run(make_broker, scenario, QueueKind.PLAIN)


def test_stats_of_a_missing_queue_is_none(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        assert await broker.stats(queue + ".nope") is None
        assert await broker.stats(queue) is not None  # the connection is still usable

    run(make_broker, scenario)


def test_a_retired_consumer_gets_nothing_more_and_retiring_it_again_does_nothing(
        make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        for i in range(3):
            await broker.publish(queue, env(f"m{i}"))
        held: list[Delivery] = []
        first = asyncio.Event()

        async def handler(d: Delivery) -> None:
            held.append(d)
            first.set()

        consumer = await broker.consume(queue, 1, handler)
        await first.wait()
        await consumer.retire()
        await consumer.retire()  # again: no error, and the connection stays up
        await consumer.cancel()
        await held[0].ack()  # the retired consumer's delivery can still be settled
        stats = await broker.stats(queue)
        assert stats is not None and stats.ready == 2 and len(held) == 1  # its window freed, nothing more came
        got = await broker.get(queue)
        assert got is not None and got.envelope.body == b"m1"

    run(make_broker, scenario)
