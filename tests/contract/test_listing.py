"""The seam's answers for ``fairq status`` and ``fairq dlq``, on every backend of test_broker_contract.BACKENDS:
list_queues, the unacked count and kind of QueueStats, and Delivery.death_reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from test_broker_contract import env, make_broker, run  # noqa: F401 (make_broker: the fixture)

from fairq.broker import Broker
from fairq.broker.rabbitmq import RabbitMQBroker
from fairq.broker.topology import dead_letter_queue


def test_list_queues_names_the_queue_and_its_dead_letter_queue_or_says_it_cannot(
        make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> tuple[str, list[str] | None]:
        return queue, await broker.list_queues()

    queue, listed = run(make_broker, scenario)
    # RabbitMQ without a management URL cannot list: None, never a partial list.
    assert listed is None or {queue, dead_letter_queue(queue)} <= set(listed)
    assert listed is not None or isinstance(make_broker(), RabbitMQBroker)


def test_stats_count_unacked_deliveries_where_the_backend_can_tell(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> tuple[int | None, int | None, int | None]:
        for n in range(3):
            await broker.publish(queue, env(f"m{n}"))
        held = await broker.get(queue)
        assert held is not None
        during = await broker.stats(queue)
        assert during is not None and during.ready == 2
        await held.ack()
        deadline = asyncio.get_running_loop().time() + 5
        while True:  # acks may be written in batches: the count follows once the ack is stored
            after = await broker.stats(queue)
            assert after is not None
            if during.unacked is None or after.unacked != during.unacked or asyncio.get_running_loop().time() > deadline:
                return during.unacked, after.unacked, during.ready
            await asyncio.sleep(0.01)

    during, after, _ = run(make_broker, scenario)
    if isinstance(make_broker(), RabbitMQBroker):
        assert (during, after) == (None, None)  # over AMQP alone it cannot tell (tests/integration: management)
    else:
        assert (during, after) == (1, 0)


def test_a_message_fairq_dead_lettered_has_no_broker_death_reason(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> tuple[str | None, str | None]:
        await broker.publish(queue, env("poison"))
        got = await broker.get(queue)
        assert got is not None
        before = got.death_reason
        await broker.dead_letter(got, {"fairq-dead-reason": "test"})
        dead = await broker.get(dead_letter_queue(queue))
        assert dead is not None
        reason = dead.death_reason
        await dead.ack()
        return before, reason

    assert run(make_broker, scenario) == (None, None)


def test_a_delayed_message_is_counted_as_delayed_not_ready(make_broker: Callable[[], Broker]) -> None:
    async def scenario(broker: Broker, queue: str) -> tuple[int, int | None, int | None]:
        before = await broker.delayed_in_common()
        await broker.publish(queue, env("later"), delay=3)
        stats = await broker.stats(queue)
        assert stats is not None
        after = await broker.delayed_in_common()
        # Leave nothing behind in a shared delay chain: wait until it is due, then take it.
        deadline = asyncio.get_running_loop().time() + 10
        while (got := await broker.get(queue)) is None:
            assert asyncio.get_running_loop().time() < deadline, "the delayed message never became ready"
            await asyncio.sleep(0.1)
        await got.ack()
        grown = None if after is None or before is None else after - before
        return stats.ready, stats.delayed, grown

    ready, delayed, grown = run(make_broker, scenario)
    assert ready == 0
    if isinstance(make_broker(), RabbitMQBroker):
        # Its delay chain holds every queue's delays together: counted there (other runs' delays too).
        assert delayed is None and grown is not None and grown >= 1
    else:
        assert (delayed, grown) == (1, None)
