"""Worker.snapshot() on an in-process Worker over the memory backend: running tasks with their slots,
held-not-started, the window, the counters."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable

import fairq
from worker_fakes import send
from fairq.broker import MemoryBackend, QueueSpec
from fairq.worker.policy import Prefetch
from fairq.worker.snapshot import Counters
from fairq.worker.worker import State, Worker


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_a_snapshot_shows_each_running_task_on_its_own_slot_and_what_waits_as_held_not_started() -> None:
    app = fairq.App()
    gate = threading.Event()

    @app.task(name="gated")
    def gated(n: int) -> None:
        assert gate.wait(10)

    @app.task(name="boom", max_retries=0)
    def boom() -> None:
        raise ValueError("boom")

    backend = MemoryBackend(f"memory://snap-{uuid.uuid4().hex[:8]}")

    async def main() -> None:
        worker = Worker(backend=backend, queues=[QueueSpec("q")], tasks=app.tasks, name="sw", threads=2,
                        prefetch=Prefetch.parse("4"))
        idle = worker.snapshot()  # before run(): nothing open, nothing running
        assert (idle.running, idle.held, idle.held_not_started, idle.counters) == ((), 0, 0, Counters())
        run = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.ready.wait(), 10)
            ids = [await send(backend, "q", "gated", i) for i in range(3)]
            await until(lambda: len(worker.snapshot().running) == 2 and worker.snapshot().held_not_started == 1,
                        "two running, one waiting")
            snap = worker.snapshot()
            assert snap.worker == "sw" and snap.state == "running" and snap.connected
            assert (snap.slots, snap.policy, snap.window, snap.queues) == (2, "4", 4, ("q",))
            assert snap.held == 3 and snap.busy == 2
            assert sorted(r.slot for r in snap.running) == [0, 1]
            assert {r.message_id for r in snap.running} < set(ids)
            assert all(r.task == "gated" and r.queue == "q" and r.sync and r.started <= snap.at for r in snap.running)
            assert snap.counters.received == 3 and snap.counters.succeeded == 0
            gate.set()
            await send(backend, "q", "boom")
            await until(lambda: worker.snapshot().counters.dead_lettered == 1, "the dead letter")
            snap = worker.snapshot()
            assert snap.counters == Counters(received=4, succeeded=3, failed=1, dead_lettered=1)
            assert snap.running == () and snap.held_not_started == 0
        finally:
            worker.stop()
            await asyncio.wait_for(run, 10)
        assert worker.snapshot().state == State.STOPPING.value

    asyncio.run(main())


def test_async_tasks_take_the_lowest_free_slot_number() -> None:
    app = fairq.App()
    release = asyncio.Event()

    @app.task(name="waits")
    async def waits() -> None:
        await release.wait()

    backend = MemoryBackend(f"memory://snap-{uuid.uuid4().hex[:8]}")

    async def main() -> None:
        worker = Worker(backend=backend, queues=[QueueSpec("q")], tasks=app.tasks, name="aw", threads=3,
                        prefetch=Prefetch.parse("fair"))
        run = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.ready.wait(), 10)
            for _ in range(3):
                await send(backend, "q", "waits")
            await until(lambda: len(worker.snapshot().running) == 3, "three running")
            assert [r.slot for r in worker.snapshot().running] == [0, 1, 2]
            assert not any(r.sync for r in worker.snapshot().running)
            release.set()
            await until(lambda: worker.snapshot().counters.succeeded == 3, "all done")
        finally:
            worker.stop()
            await asyncio.wait_for(run, 10)

    asyncio.run(main())
