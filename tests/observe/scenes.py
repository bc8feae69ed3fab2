"""Observing real workers on every backend: ``fairq worker`` subprocesses on RabbitMQ and SQLite, Worker
objects in this process on memory; an :class:`~fairq.observe.Observer` on a loop thread of its own."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fairq.broker import open_backend
from fairq.loopthread import LoopThread
from fairq.observe import Observer, QueueView, WorkerView
from tests.support.inprocess import InProcessWorkers
from tests.support.workers import TASKS, WorkerProcess, worker_process

#: Seconds between the subprocess workers' heartbeats here: a killed one is lost within lost_after(0.5).
HEARTBEAT = 0.5


class Watch:
    """An Observer of ``url`` running on its own loop thread; read it through :meth:`queue` / :meth:`workers`."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self.loop = LoopThread("test-observer")
        self.observer = Observer(open_backend(url), queues, count_every=0.2)
        self.loop.run(self.observer.__aenter__(), timeout=30)

    def _on_loop(self, fn: Any) -> Any:
        async def call() -> Any:
            return fn()
        return self.loop.run(call(), timeout=10)

    def queue(self, name: str) -> QueueView:
        return next(q for q in self._on_loop(self.observer.picture.queue_views) if q.name == name)

    def workers(self) -> list[WorkerView]:
        return list(self._on_loop(self.observer.picture.worker_views))

    def json(self) -> dict[str, Any]:
        return dict(self._on_loop(self.observer.as_json))

    def close(self) -> None:
        try:
            self.loop.run(self.observer.close(), timeout=30)
        finally:
            self.loop.stop()


@contextmanager
def watching(url: str, queues: list[str]) -> Iterator[Watch]:
    watch = Watch(url, queues)
    try:
        yield watch
    finally:
        watch.close()


@contextmanager
def workers(url: str, queue: str, journal: Path, *, processes: int = 1, threads: int = 1) -> Iterator[Any]:
    """Workers for ``queue``: a ``fairq worker`` subprocess (its WorkerProcess) or in-process Workers on memory."""
    env = {"FAIRQ_TEST_JOURNAL": str(journal)}
    if url.startswith("memory://"):
        group = InProcessWorkers(open_backend(url), [queue], module=str(TASKS), processes=processes,
                                 threads=threads, env=env)
        try:
            group.wait_consuming()
            yield group
        finally:
            group.close()
        return
    with worker_process(str(TASKS), "-Q", queue, "-p", str(processes), "-t", str(threads), "--heartbeat",
                        str(HEARTBEAT), env={"FAIRQ_BROKER_URL": url, **env}, ready=processes) as process:
        yield process


def kill_all(process: WorkerProcess) -> None:
    """kill -9 the supervisor first (so nothing restarts), then its children."""
    children = process.children()
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(10)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

