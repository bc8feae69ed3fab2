"""A worker's ``threads`` task slots: sync tasks on the thread runner, async ones on the loop, one interface.

With ``-t 4`` sync tasks have four threads and async ones four places on the loop; the
window and the watchdog count the two together (:attr:`Slots.busy`). Each task gets one :class:`Running` record, whatever its kind: what the
watchdog (time limits, long-task notes), the adaptive window and the hooks read.
Unstarted tasks can be given back at any time (:meth:`Slots.give_back`): their
:meth:`Slots.run` raises :class:`NotStarted`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .threads import Job, NotStarted, ThreadRunner

__all__ = ["NotStarted", "Running", "Slots"]


@dataclass(eq=False)
class Running:
    """One task this worker runs (or is about to): the same record for sync and async tasks."""

    message_id: str
    task: str  #: task name, or "raw"
    limit: float | None = None  #: the task's time limit, seconds
    handed_back: int = 0  #: how often a worker handed this task back before (fairq-handed-back)
    #: What runs it: the thread runner's Job (sync) or the asyncio task (async); None until submitted.
    slot: Job | asyncio.Task[Any] | None = None
    started: float = 0.0  #: time.time() when a slot started it; 0 while waiting
    #: Which slot runs it, 0 … threads - 1 (a sync task's thread, an async task's place on the loop); -1 while waiting.
    index: int = -1
    ended: float = 0.0
    noted_long: bool = False  #: the adaptive window counted it as long while it ran
    queue: str = ""  #: the queue it came from

    @property
    def sync(self) -> bool:
        return isinstance(self.slot, Job)


class Slots:
    """``count`` slots shared by sync and async tasks; open on the worker's loop before use."""

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self._name = name
        self._runner: ThreadRunner | None = None
        self._async_free = count
        self._async_places = list(range(count))  # a heap: an async task takes the lowest free place
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._async: set[Running] = set()

    def open(self) -> None:
        self._runner = ThreadRunner(self.count, f"fairq-{self._name}")

    def close(self) -> None:
        """Give back what waits, and let the threads exit once their tasks end (they are not interrupted)."""
        if self._runner is not None:
            self._runner.reclaim()
            self._runner.stop()

    @property
    def runner(self) -> ThreadRunner:
        assert self._runner is not None, "Slots.open() first"
        return self._runner

    def running(self) -> list[Running]:
        """The tasks a slot runs now."""
        records = [job.record for job in list(self.runner.running) if isinstance(job.record, Running)]
        return records + list(self._async)

    @property
    def busy(self) -> int:
        return len(self.runner.running) + len(self._async)

    def has_free(self) -> bool:
        return self.busy < self.count

    @property
    def waiting(self) -> int:
        """Tasks handed to a slot and not started yet (approximate for sync ones)."""
        return self.runner.queued + len(self._waiters)

    async def run(self, record: Running, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any],
                  on_start: Callable[[Running], None] | None = None) -> Any:
        """Run ``fn`` in a slot and return its result or raise its exception (``asyncio.TimeoutError`` for an
        async task over ``record.limit``; :class:`NotStarted` if given back first). ``on_start`` is called on
        the loop as it starts (a sync task's when its thread takes it: a loop wake-up, so only if asked)."""
        if asyncio.iscoroutinefunction(fn):
            await self._acquire()
            record.slot = asyncio.current_task()
            record.index = heapq.heappop(self._async_places)
            record.started = time.time()
            self._async.add(record)
            try:
                if on_start is not None:
                    on_start(record)
                return await asyncio.wait_for(fn(*args, **kwargs), record.limit)
            finally:
                record.ended = time.time()
                self._async.discard(record)
                heapq.heappush(self._async_places, record.index)
                self._release()
        started = (lambda at: on_start(record)) if on_start is not None else None
        job = self.runner.submit(fn, args, kwargs, started, record)
        record.slot = job
        try:
            return await job.future
        finally:
            if record.started:
                record.ended = job.ended or time.time()

    def overrun(self, record: Running, error: BaseException) -> bool:
        """End the wait for a sync task that ran over its limit (its thread runs on: it cannot be
        stopped). False if it has ended already."""
        job = record.slot
        if not isinstance(job, Job) or job.future.done():
            return False
        job.future.set_exception(error)
        return True

    def give_back(self, republish: bool = False, once: bool = False) -> None:
        """Every task not started yet fails with NotStarted(republish). ``once``: sync tasks handed back
        before stay: each hand-back sends a task to the back of the queue, so one passed on from worker
        to worker would run after everything sent meanwhile."""
        self.runner.reclaim(republish, _handed_back_before if once else None)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(NotStarted(republish))

    async def _acquire(self) -> None:
        if self._async_free > 0:
            self._async_free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._async_free += 1


def _handed_back_before(job: Job) -> bool:
    return isinstance(job.record, Running) and job.record.handed_back > 0
