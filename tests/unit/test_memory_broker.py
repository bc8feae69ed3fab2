"""memory:// beyond the contract: stores by name, a clock the test moves, drops for fault tests,
and a producer on another thread and loop than the consumer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fairq.broker import Delivery, QueueSpec, connect_url
from fairq.broker.memory import ManualClock, MemoryBroker, MemoryStore
from fairq.errors import ConfigurationError
from fairq.message import Envelope


def test_brokers_of_one_url_share_a_store_and_names_separate_them() -> None:
    async def main() -> None:
        a, b, other = connect_url("memory://shared-x"), connect_url("memory://shared-x"), connect_url("memory://y")
        for broker in (a, b, other):
            await broker.connect()
        await a.declare(QueueSpec("q"))
        await a.publish("q", Envelope(b"hi"))
        got = await b.get("q")
        assert got is not None and got.envelope.body == b"hi"
        assert await other.stats("q") is None
        for broker in (a, b, other):
            await broker.close()

    asyncio.run(main())


def test_a_manual_clock_releases_delayed_messages_only_when_moved() -> None:
    store = MemoryStore(clock=ManualClock())

    async def main() -> None:
        broker = MemoryBroker.on(store)
        await broker.connect()
        await broker.declare(QueueSpec("q"))
        await broker.publish("q", Envelope(b"later"), delay=60)
        assert await broker.get("q") is None
        store.advance(59.9)
        assert await broker.get("q") is None
        store.advance(0.1)
        got = await broker.get("q")
        assert got is not None and got.envelope.body == b"later"
        await broker.close()

    asyncio.run(main())
    with pytest.raises(ConfigurationError):
        MemoryStore().advance(1)


def test_a_dropped_connection_reports_lost_and_gives_its_deliveries_back() -> None:
    store = MemoryStore()

    async def main() -> None:
        worker, peer = MemoryBroker.on(store), MemoryBroker.on(store)
        await worker.connect()
        await peer.connect()
        await worker.declare(QueueSpec("q"))
        await worker.publish("q", Envelope(b"x"))
        held = await worker.get("q")
        assert held is not None and held.alive
        store.drop(worker)
        cause = await asyncio.wait_for(worker.wait_lost(), 5)
        assert "dropped" in str(cause) and not held.alive
        again = await peer.get("q")
        assert again is not None and again.redelivered and again.delivery_count == 1
        await peer.close()

    asyncio.run(main())


def test_a_producer_on_another_thread_and_loop_wakes_the_consumer() -> None:
    store = MemoryStore()

    async def main() -> list[bytes]:
        broker = MemoryBroker.on(store)
        await broker.connect()
        await broker.declare(QueueSpec("q"))
        got: list[bytes] = []
        done = asyncio.Event()

        async def handler(d: Delivery) -> None:
            got.append(d.envelope.body)
            await d.ack()
            if len(got) == 50:
                done.set()

        consumer = await broker.consume("q", 3, handler)

        def produce() -> None:
            async def send() -> None:
                producer = MemoryBroker.on(store)
                await producer.connect()
                for i in range(50):
                    await producer.publish("q", Envelope(str(i).encode()))
                await producer.close()
            asyncio.run(send())

        thread = threading.Thread(target=produce)
        thread.start()
        await asyncio.wait_for(done.wait(), 10)
        thread.join()
        await consumer.cancel()
        await broker.close()
        return got

    assert asyncio.run(main()) == [str(i).encode() for i in range(50)]
