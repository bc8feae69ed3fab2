"""Event scenarios on every backend: an in-process Worker on the backend and a listener on the same backend.

RabbitMQ is the shared test broker (other runs may emit events there too, so a scene only keeps the
events of its own worker), SQLite a database in the test's tmp_path, memory a store of its own.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import fairq  # noqa: E402
from fairq import message as wire  # noqa: E402
from fairq.broker import Backend, Broker, QueueSpec, open_backend  # noqa: E402
from fairq.broker.topology import dead_letter_queue  # noqa: E402
from fairq.events import Event, EventOptions, EventStream, TaskEvent, listen  # noqa: E402
from fairq.worker.policy import Prefetch  # noqa: E402
from fairq.worker.worker import State, Worker  # noqa: E402

BACKENDS = ("memory", "rabbitmq", "sqlite")


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    if request.param == "rabbitmq":
        return str(request.getfixturevalue("broker_url"))
    if request.param == "sqlite":
        return f"sqlite://{request.getfixturevalue('tmp_path')}/fairq.db"
    return f"memory://events-{uuid.uuid4().hex[:10]}"


async def until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``condition`` on the loop until it is truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Scene:
    backend: Backend
    queue: str
    worker: Worker
    stream: EventStream
    producer: Broker
    events: list[Event] = field(default_factory=list)

    async def send(self, task: str, *args: Any) -> str:
        envelope = wire.encode_task(task, list(args), {}, max_bytes=1 << 20)
        await self.producer.publish(self.queue, envelope)
        assert envelope.message_id
        return envelope.message_id

    def of(self, message_id: str) -> list[TaskEvent]:
        return [e for e in self.events if isinstance(e, TaskEvent) and e.message_id == message_id]

    def kinds(self, message_id: str) -> list[str]:
        return [e.kind for e in self.of(message_id)]

    def keys(self) -> list[str]:
        return [e.key for e in self.events]

    async def wait(self, condition: Callable[[], Any], what: str) -> Any:
        return await until(condition, what)


async def _collect(scene: Scene) -> None:
    async for event in scene.stream:
        if event.worker == scene.worker.name:
            scene.events.append(event)


@asynccontextmanager
async def scene(url: str, app: fairq.App, *, threads: int = 1, prefetch: str = "fair", heartbeat: float = 0.25,
                patterns: Sequence[str] = ("#",), events: bool | EventOptions | None = None) -> AsyncIterator[Scene]:
    """A listener, then a started worker on a fresh queue; on exit the worker stops (if it still runs), the
    listener keeps reading until the worker's offline event (when it sent one), and the queues go."""
    backend = open_backend(url)
    queue = f"events.{uuid.uuid4().hex[:10]}"
    name = f"ew-{uuid.uuid4().hex[:8]}"
    async with listen(backend, patterns) as stream:
        producer = backend.broker()
        await producer.connect()
        await producer.declare(QueueSpec(queue))
        worker = Worker(backend=backend, queues=[QueueSpec(queue)], tasks=app.tasks, name=name, threads=threads,
                        prefetch=Prefetch.parse(prefetch), grace_seconds=10,
                        events=EventOptions(heartbeat=heartbeat) if events is None else events)
        the_scene = Scene(backend, queue, worker, stream, producer)
        collecting = asyncio.ensure_future(_collect(the_scene))
        run = asyncio.ensure_future(worker.run())
        try:
            await until(lambda: worker.ready.is_set() or run.done(), "the worker to consume")
            yield the_scene
            if worker.state is State.RUNNING:
                worker.stop()
            await asyncio.wait_for(run, 20)
            if worker.events is not None and "#" in patterns:
                await until(lambda: "worker.offline" in the_scene.keys(), "the worker's offline event")
        finally:
            if not run.done():
                worker.abort()
                await asyncio.wait_for(run, 20)
            collecting.cancel()
            for q in (queue, dead_letter_queue(queue)):
                await producer.delete(q)
            await producer.close()
