"""The worker's hooks, on an in-process Worker over the memory backend: what fires, in which order, when."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import fairq
from worker_fakes import send
from fairq import message as wire
from fairq.broker import MemoryBackend, QueueSpec
from fairq.broker.topology import dead_letter_queue
from fairq.worker.hooks import DeadLettered, Event, Finished, HandedBack, Hooks, Received, Retried, Started
from fairq.worker.policy import Prefetch
from fairq.worker.worker import State, Worker


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def kinds(events: list[Event], message_id: str) -> list[str]:
    return [type(e).__name__ for e in events if e.message_id == message_id]


def scenario(app: fairq.App, body: Callable[[Worker, MemoryBackend, str, list[Event]], Awaitable[None]],
             prefetch: str = "fair", hooks: Hooks | None = None) -> list[Event]:
    """Run ``body`` with a started worker (one slot) on a fresh memory store; the events it saw."""
    events: list[Event] = []
    backend = MemoryBackend(f"memory://hooks-{uuid.uuid4().hex[:8]}")
    queue = "q"

    async def main() -> None:
        own = hooks or Hooks()
        own.subscribe(events.append)
        worker = Worker(backend=backend, queues=[QueueSpec(queue)], tasks=app.tasks, name="hw", threads=1,
                        prefetch=Prefetch.parse(prefetch), hooks=own)
        run = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.ready.wait(), 10)
            await body(worker, backend, queue, events)
        finally:
            if worker.state is State.RUNNING:
                worker.stop()
            await asyncio.wait_for(run, 10)

    asyncio.run(main())
    return events


def test_a_sync_tasks_started_fires_while_its_thread_runs_it_and_finished_after() -> None:
    app = fairq.App()
    gate = threading.Event()

    @app.task(name="gated")
    def gated() -> None:
        assert gate.wait(10)

    async def body(worker: Worker, backend: MemoryBackend, queue: str, events: list[Event]) -> None:
        mid = await send(backend, queue, "gated")
        await until(lambda: "Started" in kinds(events, mid), "Started")
        assert kinds(events, mid) == ["Received", "Started"]  # the gate is still closed: no Finished yet
        gate.set()
        await until(lambda: "Finished" in kinds(events, mid), "Finished")
        assert kinds(events, mid) == ["Received", "Started", "Finished"]
        received, started, finished = [e for e in events if e.message_id == mid]
        assert isinstance(finished, Finished) and finished.outcome == "ok"
        assert started.at <= finished.at and finished.seconds == pytest.approx(finished.at - started.at, abs=1e-6)
        for e in (received, started, finished):
            assert (e.task, e.queue, e.worker, e.attempt) == ("gated", queue, "hw", 1)
            assert e.sent is not None and e.sent <= e.at

    scenario(app, body)


def test_a_retry_then_a_dead_letter_fire_after_their_copies_are_confirmed() -> None:
    app = fairq.App()

    @app.task(name="flaky", max_retries=1)
    def flaky() -> None:
        raise fairq.Retry(delay=0.0)

    async def body(worker: Worker, backend: MemoryBackend, queue: str, events: list[Event]) -> None:
        mid = await send(backend, queue, "flaky")
        await until(lambda: "DeadLettered" in kinds(events, mid), "the dead letter")
        assert kinds(events, mid) == ["Received", "Started", "Finished", "Retried",
                                      "Received", "Started", "Finished", "DeadLettered"]
        mine = [e for e in events if e.message_id == mid]
        assert [e.attempt for e in mine] == [1, 1, 1, 1, 2, 2, 2, 2]
        assert [e.outcome for e in mine if isinstance(e, Finished)] == ["retry", "dead-lettered"]
        retried = next(e for e in mine if isinstance(e, Retried))
        assert retried.delay == 0.0
        dead = mine[-1]
        assert isinstance(dead, DeadLettered) and dead.reason == wire.REASON_FAILED
        stats = await worker.broker.stats(dead_letter_queue(queue))
        assert stats is not None and stats.ready == 1

    scenario(app, body)


def test_a_refused_message_is_dead_lettered_without_started() -> None:
    app = fairq.App()

    async def body(worker: Worker, backend: MemoryBackend, queue: str, events: list[Event]) -> None:
        mid = await send(backend, queue, "nobody.knows")
        await until(lambda: "DeadLettered" in kinds(events, mid), "the dead letter")
        assert kinds(events, mid) == ["Received", "DeadLettered"]
        dead = events[-1]
        assert isinstance(dead, DeadLettered) and dead.reason == wire.REASON_UNKNOWN_TASK
        assert dead.task == "nobody.knows"

    scenario(app, body)


def test_an_unstarted_task_given_back_at_shutdown_fires_handed_back() -> None:
    app = fairq.App()
    gate = threading.Event()

    @app.task(name="gated")
    def gated() -> None:
        assert gate.wait(10)

    async def body(worker: Worker, backend: MemoryBackend, queue: str, events: list[Event]) -> None:
        first = await send(backend, queue, "gated")
        second = await send(backend, queue, "gated")
        await until(lambda: kinds(events, second) == ["Received"] and "Started" in kinds(events, first), "both held")
        worker.stop()
        await until(lambda: "HandedBack" in kinds(events, second), "the hand-back")
        back = [e for e in events if e.message_id == second][-1]
        assert isinstance(back, HandedBack) and back.how == "requeued"
        gate.set()
        await until(lambda: "Finished" in kinds(events, first), "the running task's end")

    scenario(app, body, prefetch="2")


def test_a_failing_subscriber_is_logged_once_and_never_reaches_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    app = fairq.App()
    done: list[str] = []

    @app.task(name="quick")
    def quick(tag: str) -> None:
        done.append(tag)

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    hooks = Hooks([broken])

    async def body(worker: Worker, backend: MemoryBackend, queue: str, events: list[Event]) -> None:
        ids = [await send(backend, queue, "quick", tag) for tag in ("a", "b")]
        await until(lambda: all("Finished" in kinds(events, i) for i in ids), "both tasks")
        assert done == ["a", "b"]  # both ran and were acked: the broken subscriber stopped nothing
        await until(lambda: worker.window.held == 0, "both settled")
        stats = await worker.broker.stats(queue)
        assert stats is not None and stats.ready == 0
        assert hooks.failures(broken) == 6  # Received, Started, Finished for each
        assert [type(e) for e in events if e.message_id == ids[1]] == [Received, Started, Finished]

    with caplog.at_level(logging.ERROR, logger="fairq.worker"):
        scenario(app, body, hooks=hooks)
    logged = [r for r in caplog.records if "hook subscriber" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


class CountingBackend(MemoryBackend):
    """A memory backend that keeps every broker it made (the worker must make them, not a URL)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.made: list[Any] = []

    def broker(self) -> Any:
        broker = super().broker()
        self.made.append(broker)
        return broker


def test_after_a_loss_the_worker_makes_a_fresh_broker_from_its_backend_and_consumes_again() -> None:
    app = fairq.App()
    ran: list[str] = []

    @app.task(name="quick")
    def quick(tag: str) -> None:
        ran.append(tag)

    backend = CountingBackend(f"memory://lost-{uuid.uuid4().hex[:8]}")

    async def main() -> None:
        worker = Worker(backend=backend, queues=[QueueSpec("q")], tasks=app.tasks, name="lw", threads=1)
        run = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.ready.wait(), 10)
            assert backend.made == [worker.broker]
            first = worker.broker
            backend.store.drop(first)  # as if its connection died
            await until(lambda: worker.broker is not first and worker.ready.is_set(), "a new session")
            assert backend.made == [first, worker.broker]
            await send(backend, "q", "quick", "after")
            await until(lambda: ran == ["after"], "the task sent after the loss")
        finally:
            worker.stop()
            await asyncio.wait_for(run, 10)

    asyncio.run(main())
