"""The worker's delivery limit reads ``Delivery.redeliveries`` alone, whatever backend counted it."""

from __future__ import annotations

import asyncio
import uuid

import fairq
from worker_fakes import FakeDelivery
from fairq import message as wire
from fairq.broker import QueueSpec, open_backend
from fairq.worker.worker import Worker


def test_a_delivery_handed_out_limit_times_before_is_dead_lettered_unrun_and_one_fewer_runs() -> None:
    app = fairq.App()
    ran: list[str] = []

    @app.task(name="t")
    def task(tag: str) -> None:
        ran.append(tag)

    async def main() -> list[wire.Envelope]:
        backend = open_backend(f"memory://limit-{uuid.uuid4().hex[:8]}")
        worker = Worker(backend=backend, queues=[], tasks=app.tasks, name="w", delivery_limit=3)
        await worker.broker.connect()
        await worker.broker.declare(QueueSpec("q"))
        below, at = (FakeDelivery(wire.encode_task("t", [tag], {}, max_bytes=1 << 20), n > 0, n) for tag, n in (("ran", 2), ("dead", 3)))
        worker.slots.open()
        try:
            await worker.pipeline.handle(below)
            await worker.pipeline.handle(at)
        finally:
            worker.slots.close()
        assert below.acked and at.acked
        dead = await worker.broker.get("q.dlq")
        assert dead is not None and await worker.broker.get("q.dlq") is None
        await worker.broker.close()
        return [dead.envelope]

    (dead,) = asyncio.run(main())
    assert ran == ["ran"]
    assert dead.headers[wire.H_REASON] == wire.REASON_DELIVERY_LIMIT
    assert "delivered 4 times without being settled (limit 3)" in dead.headers[wire.H_ERROR_MESSAGE]
