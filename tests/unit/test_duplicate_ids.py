"""The de-duplication rule of the worker's pipeline, without a broker: only a redelivery may take a kept result."""

from __future__ import annotations

import asyncio

import fairq
from worker_fakes import FakeDelivery
from fairq import message as wire
from fairq.broker import open_backend
from fairq.worker.worker import Worker
from fairq.worker.policy import Prefetch


def test_a_reused_id_runs_on_first_delivery_and_only_a_redelivery_takes_the_running_result() -> None:
    app = fairq.App()
    ran: list[str] = []

    async def main() -> None:
        release = asyncio.Event()

        @app.task(name="held")
        async def held(tag: str) -> None:
            ran.append(tag)
            await release.wait()

        worker = Worker(backend=open_backend("memory://"), queues=[], tasks=app.tasks, name="w",
                        threads=4, prefetch=Prefetch("fair"))

        def delivery(tag: str, **flags: object) -> FakeDelivery:
            envelope = wire.encode_task("held", [tag], {}, max_bytes=1 << 20, message_id="same-id")
            return FakeDelivery(envelope, **flags)  # type: ignore[arg-type]

        first, reused, redelivered, counted = (delivery("first"), delivery("reused"),
                                               delivery("again", redelivered=True),
                                               delivery("counted", redeliveries=1))
        handling = [asyncio.ensure_future(worker.pipeline.handle(d)) for d in (first, reused, redelivered, counted)]
        for _ in range(20):  # loop turns enough for all four to start if they would (two do)
            await asyncio.sleep(0)
        assert sorted(ran) == ["first", "reused"]
        release.set()
        await asyncio.gather(*handling)
        assert all(d.acked for d in (first, reused, redelivered, counted))
        assert worker.duplicates_suppressed == 2
        assert sorted(ran) == ["first", "reused"]

    asyncio.run(main())
