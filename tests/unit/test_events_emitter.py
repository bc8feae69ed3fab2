"""The emitter on an in-process Worker over the memory backend: batches and their order, drops counted when the
broker refuses, what is kept while there is no session; the listener riding out a lost connection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import fairq
from fairq import message as wire
from fairq.broker import MemoryBackend, QueueSpec
from fairq.events import EventOptions, EventStream, TaskEvent, WorkerHeartbeat, decode_batch, listen
from fairq.events import emitter as emitter_module
from fairq.worker import hooks
from fairq.worker.worker import Worker

app = fairq.App()


@app.task(name="ok")
def ok(n: int) -> int:
    return n


async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := condition()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return value


def with_worker(body: Callable[[Worker, MemoryBackend, EventStream], Awaitable[None]],
                options: EventOptions = EventOptions(heartbeat=0.2)) -> None:
    backend = MemoryBackend(f"memory://emit-{uuid.uuid4().hex[:8]}")

    async def main() -> None:
        async with listen(backend) as stream:
            worker = Worker(backend=backend, queues=[QueueSpec("q")], tasks=app.tasks, name="ew", events=options)
            run = asyncio.ensure_future(worker.run())
            try:
                await until(worker.ready.is_set, "consuming")
                await body(worker, backend, stream)
            finally:
                worker.stop()
                await asyncio.wait_for(run, 10)

    asyncio.run(main())


def hook(kind: type[hooks.Event], message_id: str, **extra: Any) -> hooks.Event:
    return kind(message_id=message_id, task="t", queue="q", worker="ew", attempt=1, at=time.time(), sent=None,
                **extra)


def test_a_message_whose_story_starts_again_within_one_flush_keeps_its_order() -> None:
    async def body(worker: Worker, backend: MemoryBackend, stream: EventStream) -> None:
        emitter = worker.events
        assert emitter is not None
        for event in (hook(hooks.Received, "a"), hook(hooks.HandedBack, "a", how="requeued"),
                      hook(hooks.Received, "a"), hook(hooks.Received, "b"), hook(hooks.Started, "a", slot=0)):
            worker.hooks.fire(event)
        emitter._flush()
        seen: list[tuple[str, str]] = []
        while len(seen) < 5:
            event = await stream.get(timeout=10)
            if isinstance(event, TaskEvent):
                seen.append((event.message_id, event.kind))
        assert [k for m, k in seen if m == "a"] == ["received", "handed-back", "received", "started"]

    with_worker(body)


def test_a_big_flush_goes_out_in_batches_of_at_most_max_batch_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emitter_module, "MAX_BATCH", 7)

    async def body(worker: Worker, backend: MemoryBackend, stream: EventStream) -> None:
        bodies: list[bytes] = []
        publish = worker.broker.publish_event

        def spy(key: str, body: bytes) -> bool:
            bodies.append(body)
            return publish(key, body)

        worker.broker.publish_event = spy  # type: ignore[method-assign]
        for i in range(20):
            worker.hooks.fire(hook(hooks.Received, f"m{i}"))
        assert worker.events is not None
        worker.events._flush()
        batches = [decode_batch(b) for b in bodies if b"task.received" in b]
        assert [len(b.events) for b in batches] == [7, 7, 6]
        assert [b.seq for b in batches] == sorted(b.seq for b in batches)
        ids = [e.message_id for b in batches for e in b.events if isinstance(e, TaskEvent)]
        assert ids == [f"m{i}" for i in range(20)]

    with_worker(body)


def test_batches_the_broker_refuses_are_counted_and_the_tasks_run_on() -> None:
    async def body(worker: Worker, backend: MemoryBackend, stream: EventStream) -> None:
        publish = worker.broker.publish_event
        worker.broker.publish_event = lambda key, body: False  # type: ignore[method-assign]
        producer = backend.broker()
        await producer.connect()
        for i in range(10):
            await producer.publish("q", wire.encode_task("ok", [i], {}, max_bytes=1 << 20))
        await until(lambda: worker.snapshot().counters.succeeded == 10, "every task run")
        assert worker.events is not None
        await until(lambda: worker.events is not None and worker.events.dropped >= 30, "30 task events dropped")
        worker.broker.publish_event = publish  # type: ignore[method-assign]

        async def heartbeat() -> WorkerHeartbeat:
            while True:
                event = await stream.get(timeout=10)
                assert event is not None
                if isinstance(event, WorkerHeartbeat):
                    return event

        beat = await asyncio.wait_for(heartbeat(), 10)
        assert beat.dropped >= 30 and beat.counters.succeeded == 10
        await producer.close()

    with_worker(body)


def test_without_a_session_task_events_wait_up_to_the_capacity_and_only_the_newest_heartbeat() -> None:
    async def body(worker: Worker, backend: MemoryBackend, stream: EventStream) -> None:
        emitter = worker.events
        assert emitter is not None
        await until(lambda: any(e.key == "worker.online" for e in stream.take()), "online")
        worker.ready.clear()  # as while it reconnects
        for i in range(8):
            worker.hooks.fire(hook(hooks.Received, f"m{i}"))
        for _ in range(3):
            emitter._heartbeat = emitter.heartbeat()
            emitter._flush()
        assert emitter.dropped == 3  # capacity 5
        worker.ready.set()
        emitter._flush()
        got = [await stream.get(timeout=10) for _ in range(6)]
        assert [e.key for e in got if e is not None] == ["task.received"] * 5 + ["worker.heartbeat"]
        assert [e.message_id for e in got if isinstance(e, TaskEvent)] == [f"m{i}" for i in range(5)]

    with_worker(body, EventOptions(heartbeat=60, capacity=5))


def test_a_listener_rides_out_a_lost_connection() -> None:
    async def body(worker: Worker, backend: MemoryBackend, stream: EventStream) -> None:
        assert stream._broker is not None
        backend.store.drop(stream._broker)  # type: ignore[arg-type]
        await until(lambda: stream.stats.reconnects == 1 and stream.connected, "the listener back")
        producer = backend.broker()
        await producer.connect()
        envelope = wire.encode_task("ok", [1], {}, max_bytes=1 << 20)
        await producer.publish("q", envelope)

        async def succeeded() -> TaskEvent:
            while True:
                event = await stream.get(timeout=10)
                assert event is not None
                if isinstance(event, TaskEvent) and event.kind == "succeeded":
                    return event

        assert (await asyncio.wait_for(succeeded(), 10)).message_id == envelope.message_id
        await producer.close()

    with_worker(body)
