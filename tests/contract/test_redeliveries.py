"""``Delivery.redeliveries`` on every backend: how often a message was handed out unsettled before.

Each backend counts in its own way (RabbitMQ's quorum queues themselves, its classic
queues by a counted copy the backend makes, SQLite and memory in their own rows); a
worker only compares the count with its delivery limit, so every backend must answer
the same numbers for the same story.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from test_broker_contract import collect, env, make_broker, run  # noqa: F401 (make_broker: the fixture)
from test_seam_promises import poll

from fairq.broker import Broker, Delivery, QueueKind


@pytest.mark.parametrize("kind", [QueueKind.QUORUM, QueueKind.CLASSIC])
def test_a_message_whose_consumers_die_comes_back_counted_once_per_loss(make_broker: Callable[[], Broker],
                                                                        kind: QueueKind) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        sent = env("doomed")
        await broker.publish(queue, sent)
        for before in range(3):
            doomed = make_broker()
            await doomed.connect()
            held = (await collect(doomed, queue, 1, 1))[0]
            assert held.envelope.message_id == sent.message_id and held.envelope.body == b"doomed"
            assert (held.redeliveries, held.redelivered) == (before, before > 0)
            await doomed.close()  # unsettled: the broker takes it back
        last = (await collect(broker, queue, 1, 1))[0]
        assert last.redeliveries == 3 and last.redelivered
        await last.ack()
        await poll(lambda: _empty(broker, queue))  # one message all along: no copy left behind

    run(make_broker, scenario, kind)


@pytest.mark.parametrize("kind", [QueueKind.QUORUM, QueueKind.CLASSIC])
def test_a_message_settled_on_its_first_delivery_never_counts(make_broker: Callable[[], Broker],
                                                              kind: QueueKind) -> None:
    async def scenario(broker: Broker, queue: str) -> None:
        for i in range(3):
            await broker.publish(queue, env(f"m{i}"))
        got: list[Delivery] = []
        done = asyncio.Event()

        async def handler(d: Delivery) -> None:
            got.append(d)
            await d.ack()
            if len(got) == 3:
                done.set()

        consumer = await broker.consume(queue, 2, handler)
        await asyncio.wait_for(done.wait(), 10)
        await consumer.cancel()
        assert [(d.envelope.body, d.redeliveries, d.redelivered) for d in got] == [
            (b"m0", 0, False), (b"m1", 0, False), (b"m2", 0, False)]

    run(make_broker, scenario, kind)


async def _empty(broker: Broker, queue: str) -> bool:
    stats = await broker.stats(queue)
    return stats is not None and stats.ready == 0 and (stats.unacked or 0) == 0
