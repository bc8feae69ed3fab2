"""Production :class:`~fairq.worker.worker.Worker` objects in the test's own process, for ``memory://``.

A memory store lives in one process, so its "worker processes" are Worker objects on threads of
this one, each with its own event loop and its own broker connection to the shared
:class:`~fairq.broker.MemoryBackend`: the store sees exactly what separate single-process workers
would show it. They are built as ``fairq worker`` builds its children (``worker/child.py``), and
stopped as SIGTERM stops those (:meth:`Worker.stop` on the worker's loop), so a guarantee checked
here is the worker's own behaviour. What needs a real process (kill -9, a task calling
``os._exit``, a replaced process) cannot be checked this way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence

from fairq.broker import Backend, QueueKind, QueueSpec, kind_option
from fairq.config import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_MESSAGE_BYTES
from fairq.worker.loader import load_app, load_callable
from fairq.worker.policy import DEFAULT_POLICY, Prefetch
from fairq.worker.worker import State, Worker

from .workers import wait_for


class InProcessWorkers:
    """``processes`` Worker objects consuming ``queues`` of ``backend``, each on its own thread and loop.

    ``module`` and ``raw_handler`` are what ``fairq worker MODULE --raw-handler MOD:FUNC`` takes.
    Tasks read ``env`` from this process's environment, so it is set here for the workers' life
    (one group at a time: the variables are the process's).
    """

    def __init__(self, backend: Backend, queues: Sequence[str], *, module: str | None, processes: int = 1,
                 threads: int = 1, prefetch: str | None = None, name: str | None = None,
                 raw_handler: str | None = None, env: Mapping[str, str] | None = None) -> None:
        app = load_app(module) if module else None
        raw = load_callable(raw_handler) if raw_handler else None
        if raw is not None:
            specs = [QueueSpec(q, options=kind_option(QueueKind.PLAIN)) for q in queues]
        else:
            assert app is not None, "a task module or a raw handler"
            specs = [app.queue_spec(q) for q in queues]
        self._saved = {key: os.environ.get(key) for key in (env or {})}
        os.environ.update(env or {})
        self.workers: list[Worker] = []
        for index in range(processes):
            label = name if name and processes == 1 else f"{name or 'memory'}.{index + 1}"
            self.workers.append(Worker(
                backend=backend, queues=specs, tasks=app.tasks if app else {}, name=label, threads=threads,
                prefetch=Prefetch.parse(prefetch or DEFAULT_POLICY), raw_handler=raw,
                max_message_bytes=app.max_message_bytes if app else DEFAULT_MAX_MESSAGE_BYTES,
                delivery_limit=app.delivery_limit if app else DEFAULT_DELIVERY_LIMIT))
        self._loops: dict[int, asyncio.AbstractEventLoop] = {}
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._serve, args=(i,), name=f"test-worker-{w.name}", daemon=True)
                         for i, w in enumerate(self.workers)]
        for thread in self._threads:
            thread.start()

    def _serve(self, index: int) -> None:
        async def main() -> None:
            self._loops[index] = asyncio.get_running_loop()
            await self.workers[index].run()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by wait(): a worker that raised did not stop cleanly
            self._errors.append(exc)

    def wait_consuming(self, timeout: float = 30.0) -> None:
        wait_for(lambda: all(w.ready.is_set() for w in self.workers) or self._errors, timeout,
                 what="in-process workers to start consuming")
        assert not self._errors, f"an in-process worker failed: {self._errors!r}"

    def _call(self, method: str) -> None:
        for index, worker in enumerate(self.workers):
            loop = self._loops.get(index)
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(getattr(worker, method))
                except RuntimeError:  # its loop closed meanwhile: that worker is done
                    pass

    def terminate(self) -> None:
        """What SIGTERM does to a worker process: a graceful stop (a second call aborts)."""
        self._call("stop")

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for every worker to return; 0 as a worker process exits after a clean stop, else 1."""
        wait_for(lambda: not self.alive(), timeout, what="in-process workers to stop")
        aborted = any(w.state is State.ABORTING for w in self.workers)
        return 1 if self._errors or aborted else 0

    def close(self, timeout: float = 30.0) -> None:
        """Stop (graceful, then abort if that takes too long) and give the environment back."""
        try:
            if self.alive():
                self.terminate()
                try:
                    wait_for(lambda: not self.alive(), timeout, what="in-process workers to stop")
                except AssertionError:
                    self._call("abort")
                    wait_for(lambda: not self.alive(), 10, what="in-process workers to abort")
        finally:
            for key, value in self._saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
