"""Where sync tasks run: N threads fed from one queue, reporting back to the event loop in batches.

A thread pool future per task costs the loop a wake-up per task, and the thread
waits for the loop before it may start the next one. Here the threads take the
next job as soon as they finish one, and finished jobs reach the loop together:
one wake-up for however many finished (or started, for those whose caller asked
to hear of it) meanwhile. Jobs not yet taken can be
reclaimed (shutdown, lost connection), so a prefetched task is never started
after the worker decided to give it back.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class Timed(Protocol):
    """What a job may carry for its caller: a record the thread stamps with its index and the start time."""

    started: float
    index: int


class NotStarted(Exception):
    """The job was reclaimed before any thread took it.

    ``republish``: hand it back as a fresh copy at the back of the queue (a
    rebalance, which must not count as a failed delivery) rather than requeue it.
    """

    def __init__(self, republish: bool = False) -> None:
        super().__init__("not started")
        self.republish = republish


class Job:
    __slots__ = ("fn", "args", "kwargs", "context", "future", "started", "ended", "record", "on_start")

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any],
                 future: asyncio.Future[Any], on_start: Callable[[float], None] | None = None,
                 record: Timed | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()
        self.future = future
        self.started = 0.0  #: time.time() when a thread took it; 0 while queued
        self.ended = 0.0
        #: The caller's record of this job (slots.Running); its ``started`` is set with the job's.
        self.record = record
        #: Called on the loop with ``started`` once a thread takes the job (a loop wake-up: only when asked).
        self.on_start = on_start


class ThreadRunner:
    """Runs sync callables on ``threads`` daemon threads (daemon: an overrunning task cannot hold the process)."""

    def __init__(self, threads: int, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: deque[tuple[Job, BaseException | None, Any]] = deque()
        self._started: deque[Job] = deque()  # started jobs whose on_start the loop has yet to call
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        #: Jobs a thread is running now (read by the time-limit watchdog on the loop).
        self.running: set[Job] = set()
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any],
               on_start: Callable[[float], None] | None = None, record: Timed | None = None) -> Job:
        job = Job(fn, args, kwargs, self._loop.create_future(), on_start, record)
        self._jobs.put(job)
        return job

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread (approximate: threads may be taking one right now)."""
        return self._jobs.qsize()

    def reclaim(self, republish: bool = False, spare: Callable[[Job], bool] | None = None) -> int:
        """Take back every job no thread has started (except those ``spare`` keeps, which stay queued
        in order); their futures fail with NotStarted."""
        count = 0
        kept: list[Job | None] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None or (spare is not None and spare(job)):  # a stop marker stays for the threads
                kept.append(job)
                continue
            if not job.future.done():
                job.future.set_exception(NotStarted(republish))
            count += 1
        for job in kept:
            self._jobs.put(job)
        return count

    def stop(self) -> None:
        """Let the threads exit once the jobs they have are done (running ones are not interrupted)."""
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self, index: int) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job.started = time.time()
            if job.record is not None:
                job.record.index = index
                job.record.started = job.started
            self.running.add(job)
            if job.on_start is not None:
                self._started.append(job)
                if not self._wake():
                    return
            error: BaseException | None = None
            result: Any = None
            try:
                result = job.context.run(job.fn, *job.args, **job.kwargs)
            except BaseException as exc:  # handed to the loop, which decides what a failure means
                error = exc
            job.ended = time.time()
            self.running.discard(job)
            self._done.append((job, error, result))
            if not self._wake():
                return

    def _wake(self) -> bool:
        """Have the loop deliver starts and results, unless a wake-up is on its way already (False: the
        loop is closed, the process is going away)."""
        with self._wake_lock:
            if self._wake_pending:
                return True
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:
            return False
        return True

    def _deliver(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        # The results there are now, and then every start: a job's start was queued before its result,
        # so it is reported first (results queued meanwhile wait for the wake-up their thread asked for).
        ended = len(self._done)
        while self._started:
            job = self._started.popleft()
            if job.on_start is not None:
                job.on_start(job.started)
        for _ in range(ended):
            job, error, result = self._done.popleft()
            if job.future.done():  # abandoned at its time limit, or reclaimed
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
