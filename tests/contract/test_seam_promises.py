"""More of the seam's promises (fairq/broker/base.py), on every backend of test_broker_contract.BACKENDS."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from test_broker_contract import collect, env, make_broker, run  # noqa: F401 (make_broker: the fixture)

from fairq.broker import Broker, Delivery, QueueKind, QueueSpec, kind_option
from fairq.broker.topology import dead_letter_queue
from fairq.errors import PublishRejected, QueueFull


async def poll(check: Callable[[], object], timeout: float = 10.0) -> float:
    """Seconds until the awaitable-returning ``check`` yields something truthy."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():  # type: ignore[misc]
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_a_delayed_message_is_ready_no_sooner_than_its_delay_and_shortly_after(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        got: list[Delivery] = []
        sent = time.monotonic()
        await broker.publish(queue, env("later"), delay=1.0)
        await broker.publish(queue, env("now"))
        arrived: dict[bytes, float] = {}
        done = asyncio.Event()

        async def handler(d: Delivery) -> None:
            arrived[d.envelope.body] = time.monotonic() - sent
            got.append(d)
            await d.ack()
            if len(got) == 2:
                done.set()

        consumer = await broker.consume(queue, 5, handler)
        await asyncio.wait_for(done.wait(), 10)
        await consumer.cancel()
        assert list(arrived) == [b"now", b"later"]
        assert 1.0 <= arrived[b"later"] < 1.0 + 2.0, arrived

    run(make_broker, scenario)


def test_publish_nowait_reports_each_message_once_and_its_errors(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        reports: list[tuple[int, BaseException | None]] = []
        futures = [broker.publish_nowait(queue, env(str(i)), 0.0, lambda t, e: reports.append((t, e)), i)
                   for i in range(5)]
        futures.append(broker.publish_nowait(queue + ".missing", env("x"), 0.0,
                                             lambda t, e: reports.append((t, e)), 99))
        await asyncio.gather(*futures, return_exceptions=True)
        await poll(lambda: asyncio.sleep(0, len(reports) >= 6))
        assert sorted(t for t, e in reports if e is None) == [0, 1, 2, 3, 4]
        failed = [(t, e) for t, e in reports if e is not None]
        assert len(failed) == 1 and failed[0][0] == 99 and isinstance(failed[0][1], PublishRejected)
        stats = await broker.stats(queue)
        assert stats is not None and stats.ready == 5

    run(make_broker, scenario)


def test_a_lost_connection_counts_the_delivery_and_kills_its_deliveries(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        await broker.publish(queue, env("counted"))
        doomed = make_broker()
        await doomed.connect()
        held = await collect(doomed, queue, 1, 1)
        first = held[0]
        assert first.alive and not first.redelivered and first.redeliveries == 0
        await doomed.close()
        assert not first.alive
        again = await broker.get(queue)
        assert again is not None and again.redelivered and again.redeliveries == 1
        assert again.alive
        await again.ack()

    run(make_broker, scenario)


def test_a_consumer_sees_messages_published_after_it_started(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        got: list[bytes] = []
        done = asyncio.Event()

        async def handler(d: Delivery) -> None:
            got.append(d.envelope.body)
            await d.ack()
            if len(got) == 3:
                done.set()

        consumer = await broker.consume(queue, 0, handler)
        other = make_broker()
        await other.connect()
        for i in range(3):
            await other.publish(queue, env(f"m{i}"))
        await other.close()
        await asyncio.wait_for(done.wait(), 5)
        await consumer.cancel()
        assert got == [b"m0", b"m1", b"m2"]

    run(make_broker, scenario)


def test_stats_purge_and_delete(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        for i in range(4):
            await broker.publish(queue, env(str(i)))
        stats = await broker.stats(queue)
        assert stats is not None and (stats.ready, stats.consumers) == (4, 0)
        held = await collect(broker, queue, 1, 1)
        await held[0].requeue()  # settled: its consumer is gone from the count
        await poll(lambda: _ready(broker, queue, 4))
        consumer = await broker.consume(queue, 1, lambda d: asyncio.sleep(0))  # takes one, keeps it unacked
        await poll(lambda: _ready(broker, queue, 3))
        stats = await broker.stats(queue)
        assert stats is not None and stats.consumers == 1
        await consumer.cancel()
        assert await broker.purge(queue) == 3  # the ready ones; the unacked one stays owned
        await broker.delete(queue)
        assert await broker.stats(queue) is None
        with pytest.raises(PublishRejected):
            await broker.publish(queue, env("gone"))

    run(make_broker, scenario)


async def _ready(broker: Broker, queue: str, n: int) -> bool:
    stats = await broker.stats(queue)
    return stats is not None and stats.ready == n


def test_a_full_queue_refuses_publishes_with_queue_full(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        full = f"{queue}.full"
        # RabbitMQ: quorum enforces it late (the others ignore the option)
        await broker.declare(QueueSpec(full, max_length=2, options=kind_option(QueueKind.CLASSIC)))
        try:
            await broker.publish(full, env("1"))
            await broker.publish(full, env("2"))
            with pytest.raises(QueueFull):
                await broker.publish(full, env("3"))
            got = await broker.get(full)
            assert got is not None and got.envelope.body == b"1"
            await got.ack()
            await broker.publish(full, env("3"))  # room again
        finally:
            for q in (full, dead_letter_queue(full)):
                await broker.delete(q)

    run(make_broker, scenario)


def test_dead_letter_keeps_the_message_and_adds_the_headers(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        sent = env("poison")
        sent.headers = {"fairq-protocol": 1, "mine": "kept"}
        await broker.publish(queue, sent)
        got = await broker.get(queue)
        assert got is not None
        await broker.dead_letter(got, {"fairq-dead-reason": "test", "fairq-attempts": 3})
        dead = await broker.get(dead_letter_queue(queue))
        assert dead is not None and dead.envelope.message_id == sent.message_id
        headers = dead.envelope.headers
        assert headers["mine"] == "kept" and headers["fairq-attempts"] == 3 and headers["fairq-dead-at"]
        assert not [k for k in headers if k.startswith("x-death")]
        await dead.ack()
        stats = await broker.stats(queue)
        assert stats is not None and stats.ready == 0

    run(make_broker, scenario)


def test_two_consumers_share_a_queue_and_no_message_goes_to_both(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        other = make_broker()
        await other.connect()
        seen: list[str] = []
        done = asyncio.Event()

        async def handler(d: Delivery) -> None:
            seen.append(d.envelope.message_id or "")
            await d.ack()
            if len(seen) >= 20:
                done.set()

        consumers = [await broker.consume(queue, 2, handler), await other.consume(queue, 2, handler)]
        ids = {uuid.uuid4().hex for _ in range(20)}
        for message_id in ids:
            await broker.publish(queue, env("x").__class__(body=b"x", message_id=message_id))
        await asyncio.wait_for(done.wait(), 10)
        for c in consumers:
            await c.cancel()
        await other.close()
        assert sorted(seen) == sorted(ids)

    run(make_broker, scenario)
