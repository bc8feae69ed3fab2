"""A private asyncio loop on a daemon thread: how the synchronous API drives the async core.

fairq has one concurrency core (asyncio, with an asyncio AMQP client). Synchronous callers, such as
``task.send()`` in a web request, hand coroutines to this loop and wait for the
result, instead of fairq keeping a second, blocking client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: How long :meth:`LoopThread.stop` lets cancelled coroutines clean up (close sockets) before it gives up on them.
STOP_SECONDS = 5.0


class LoopThread:
    """Runs coroutines on a background event loop; started on first use, one per owner."""

    def __init__(self, name: str = "fairq-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (or exception).

        If the wait ends early (a timeout, or Ctrl-C raising KeyboardInterrupt in the
        caller), the coroutine is cancelled: left running, it would go on publishing
        for a caller that has given up, and be destroyed pending when the loop stops.
        """
        loop = self._ensure()
        if self._thread is threading.current_thread():
            coro.close()
            raise RuntimeError("fairq's synchronous API called from its own loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()  # a no-op once done; else the task is cancelled on the loop
            raise

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop without waiting: how an async caller on another loop awaits it
        (``asyncio.wrap_future``)."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Cancel what still runs on the loop, let it finish, then stop the loop and join its thread.

        Stopping a loop with pending tasks would leave them to be garbage-collected
        ("Task was destroyed but it is pending!") with their sockets open. A later
        :meth:`run` starts a new loop.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(_finish_tasks(timeout), loop).result(timeout + 1.0)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
                pass  # the loop is wedged or already stopping: stop it as it is
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        loop.close()


async def _finish_tasks(timeout: float) -> None:
    """Cancel every other task of the running loop and wait (bounded) until they are done, as asyncio.run does."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        done, _ = await asyncio.wait(tasks, timeout=timeout)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: a task that failed while cancelled is not logged at exit
    await asyncio.get_running_loop().shutdown_asyncgens()
