"""One backend under test, reached through fairq's own seam: send, inspect, run workers.

The delivery suite (tests/delivery) checks each guarantee unchanged against ``amqp``, ``sqlite`` and
``memory`` through a :class:`Harness`. Messages go in through :class:`fairq.App` and the
:class:`~fairq.broker.Broker` seam; counts come from :meth:`Broker.stats` and dead letters from
:mod:`fairq.deadletters`, as ``fairq status`` and ``fairq dlq`` read them. The one figure the seam
cannot give live on RabbitMQ is how many deliveries consumers hold (:meth:`Harness.held`).

Workers are real ``fairq worker`` subprocesses on ``amqp`` and ``sqlite`` (signals are real
signals there), and production Worker objects in this process on ``memory``
(:mod:`tests.support.inprocess`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import pytest

from fairq import App, Call
from fairq.broker import QueueStats, open_backend
from fairq.broker.topology import dead_letter_queue
from fairq.deadletters import DeadLetter, list_dead_letters
from fairq.loopthread import LoopThread
from fairq.message import Envelope

from . import rabbit_counts
from .inprocess import InProcessWorkers
from .workers import TASKS, Journal, WorkerProcess, worker_process

T = TypeVar("T")
KINDS = ("amqp", "sqlite", "memory")
#: Why the memory backend skips what needs a worker process of its own.
NEEDS_PROCESSES = ("memory:// lives in one process: its workers are Worker objects in the test's process, so "
                   "there is no worker process to kill -9 or crash (a lost connection's redelivery is checked "
                   "for memory in tests/contract)")


class Workers(Protocol):
    """What a scenario does with the workers it started, whatever they run in."""

    def terminate(self) -> None:
        """A graceful stop: SIGTERM to a ``fairq worker``, :meth:`Worker.stop` in process."""

    def wait(self, timeout: float = 30.0) -> int:
        """Wait until they have stopped; the exit status (0: a clean stop)."""

    def alive(self) -> bool: ...


class ProcessWorkers:
    """A ``fairq worker`` supervisor and its children (:class:`~tests.support.workers.WorkerProcess`)."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process

    def terminate(self) -> None:
        self.process.signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.process.wait(timeout)

    def alive(self) -> bool:
        return self.process.process.poll() is None

    def children(self) -> list[int]:
        return self.process.children()

    def count(self, needle: str) -> int:
        return self.process.count(needle)


def delete_queue_and_dead_letters(url: str, name: str) -> None:
    """Delete a test's queue and its dead-letter queue on the backend URL names."""

    async def drop() -> None:
        broker = open_backend(url).broker()
        await broker.connect()
        try:
            for q in (name, dead_letter_queue(name)):
                await broker.delete(q)
        finally:
            await broker.close()

    asyncio.run(drop())


def unique_queue(prefix: str = "delivery") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


class Harness:
    """One backend: an App to send with, one connection to inspect with, and workers on demand."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.backend = open_backend(url)  # memory: the store every connection of this URL shares
        self.app = App(broker=url)
        self._loop = LoopThread(f"test-{kind}")
        self._broker = self.backend.broker()
        self._run(self._broker.connect())

    def __repr__(self) -> str:
        return f"Harness({self.kind})"

    @property
    def has_processes(self) -> bool:
        """True where workers are processes of their own (kill -9 means something)."""
        return self.kind != "memory"

    def require_processes(self) -> None:
        if not self.has_processes:
            pytest.skip(NEEDS_PROCESSES)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro, timeout=60)

    def close(self) -> None:
        try:
            self.app.close()
            self._run(self._broker.close())
        finally:
            self._loop.stop()

    # -- sending --------------------------------------------------------------------------

    def send(self, queue: str, task: str, *args: Any, delay: float = 0.0) -> str:
        """Send one task as an application does; its message id once confirmed."""
        return self.app.send(task, list(args), queue=queue, delay=delay)

    def send_many(self, queue: str, task: str, calls: Iterable[Call]) -> list[str]:
        return self.app.send_many(task, calls, queue=queue)

    def publish(self, queue: str, body: bytes, *, headers: Mapping[str, Any] | None = None,
                content_type: str | None = None) -> str:
        """Publish bytes as they are (no checks, as another producer might) to an existing queue; the message id."""
        message_id = uuid.uuid4().hex
        envelope = Envelope(body=body, headers=dict(headers or {}), message_id=message_id, content_type=content_type)
        self._run(self._broker.publish(queue, envelope))
        return message_id

    def publish_task(self, queue: str, task: str, args: list[Any], **headers: Any) -> str:
        """A task message built by hand (unchecked arguments, any task name), as docs/protocol.md describes it."""
        body = json.dumps({"task": task, "args": args, "kwargs": {}}).encode()
        return self.publish(queue, body, headers={"fairq-protocol": 1, "fairq-task": task, **headers},
                            content_type="application/json")

    # -- inspecting -----------------------------------------------------------------------

    def stats(self, queue: str) -> QueueStats:
        stats = self._run(self._broker.stats(queue))
        assert stats is not None, f"no queue {queue!r} on {self.kind}"
        return stats

    def ready(self, queue: str) -> int:
        return self.stats(queue).ready

    def consumers(self, queue: str) -> int:
        return self.stats(queue).consumers

    def held(self, queue: str) -> int:
        """Deliveries of ``queue`` handed to consumers and not yet settled, counted live.

        SQLite and memory count them in :meth:`Broker.stats`; RabbitMQ's only live figure is
        its consumers' channels (rabbitmqctl), as the management API's lags by seconds.
        """
        unacked = self.stats(queue).unacked
        if unacked is not None:
            return unacked
        return rabbit_counts.unacked(queue, unquote(urlsplit(self.url).path[1:]) or "/")

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """``fairq dlq list QUEUE``'s records, oldest first (left in place)."""
        return self._run(list_dead_letters(self.url, queue))

    def delete(self, *queues: str) -> None:
        for queue in queues:
            self._run(self._broker.delete(queue))

    def purge(self, queue: str) -> int:
        return self._run(self._broker.purge(queue))

    def delete_with_dead_letters(self, queue: str) -> None:
        self.delete(queue, dead_letter_queue(queue))

    # -- workers --------------------------------------------------------------------------

    @contextmanager
    def workers(self, queue: str, journal: Journal, *, module: Path | None = TASKS, processes: int = 1,
                threads: int = 1, prefetch: str | None = None, name: str | None = None,
                raw_handler: str | None = None, env: Mapping[str, str] | None = None,
                ready: bool = True) -> Iterator[Workers]:
        """Workers for ``queue`` running ``module``'s tasks (and/or ``raw_handler``), journalling to ``journal``;
        waits until all consume (``ready``) and always stops them."""
        full_env = {"FAIRQ_TEST_JOURNAL": str(journal.path), **(env or {})}
        if not self.has_processes:
            group = InProcessWorkers(self.backend, [queue], module=str(module) if module else None,
                                     processes=processes, threads=threads, prefetch=prefetch, name=name,
                                     raw_handler=raw_handler, env=full_env)
            try:
                if ready:
                    group.wait_consuming()
                yield group
            finally:
                group.close()
            return
        args = [str(module)] if module else []
        args += ["-Q", queue, "-p", str(processes), "-t", str(threads)]
        for flag, value in (("--prefetch", prefetch), ("--name", name), ("--raw-handler", raw_handler)):
            if value is not None:
                args += [flag, value]
        with worker_process(*args, env={"FAIRQ_BROKER_URL": self.url, **full_env},
                            ready=processes if ready else None) as process:
            yield ProcessWorkers(process)
