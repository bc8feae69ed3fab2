"""``TestQueue``: run an app's queued tasks in the test, on a private ``memory://`` store.

A real fairq worker runs them (retries, dead letters, delays, time limits and argument checks as in
production), but only inside :meth:`TestQueue.run_until_idle`: between calls nothing runs, so what a
test sees after ``send`` is what it sent. Delays follow a clock the test moves (:meth:`advance`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..app import App
from ..broker import QueueSpec, open_backend
from ..broker.memory import ManualClock
from ..broker.topology import dead_letter_queue
from ..deadletters import DeadLetter, describe
from ..errors import FairqError, TimeLimitExceeded
from ..loopthread import LoopThread
from ..task import Task
from ..worker.policy import DEFAULT_POLICY, Prefetch
from . import _store
from ._runs import Recorder, Run, error_type
from ._worker import make_worker

#: How often the drain looks whether every queue is idle (seconds, on the worker's loop).
POLL = 0.001


class DeadLettered(FairqError):
    """A message was dead-lettered without an exception of its task to show for it (wrong arguments,
    unknown task, delivery limit, ...); ``dead_letter`` says which and why."""

    def __init__(self, dead_letter: DeadLetter) -> None:
        why = dead_letter.error_message or ""
        super().__init__(f"{dead_letter.task} {dead_letter.message_id} dead-lettered: {dead_letter.reason}"
                         + (f": {why}" if why else ""))
        self.dead_letter = dead_letter


class NotIdle(FairqError):
    """The queues still held work when :meth:`TestQueue.run_until_idle`'s timeout ran out."""


class TestQueue:
    """Points ``app``'s sends at a private in-memory store and runs what they queue on demand.

    Use as a context manager (or call :meth:`close`): on the way out the app sends where it did before.
    ``raise_errors``: :meth:`run_until_idle` raises the exception of a task that was dead-lettered
    (else it is collected in :attr:`errors`). ``threads`` and ``prefetch`` are the worker's.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, app: App, *, raise_errors: bool = True, threads: int = 1,
                 prefetch: Prefetch = Prefetch(DEFAULT_POLICY), seed: int = 0) -> None:
        self.app = app
        self.raise_errors = raise_errors
        self.threads = threads
        self.prefetch = prefetch
        self.url, self.store = _store.private_store()
        #: Exceptions of dead-lettered tasks (when not raised), in the order they were found.
        self.errors: list[BaseException] = []
        self._recorder = Recorder()
        self._rng = random.Random(seed)
        self._loop = LoopThread("fairq-testing")
        self._reported: set[int] = set()  # store sequence numbers of dead letters already reported
        self._generation = 0
        self._previous = app.use_backend(open_backend(self.url))
        self._closed = False

    def __enter__(self) -> TestQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Send where the app sent before, and drop the private store."""
        if self._closed:
            return
        self._closed = True
        self.app.use_backend(self._previous)
        self._loop.stop()
        _store.forget(self.url)

    # -- time ---------------------------------------------------------------------------

    @property
    def clock(self) -> ManualClock:
        """The store's clock (seconds; starts at 0). Delays and retry backoff count on it, not on wall time."""
        assert isinstance(self.store.clock, ManualClock)
        return self.store.clock

    def advance(self, seconds: float) -> None:
        """Move the clock: delayed messages now due become ready (:meth:`run_until_idle` runs them)."""
        self.store.advance(seconds)

    # -- running ------------------------------------------------------------------------

    def run_until_idle(self, *, timeout: float = 10.0, include_delayed: bool = False,
                       raise_errors: bool | None = None) -> list[Run]:
        """Run queued tasks until no queue holds a ready or running one; returns the runs of this call.

        ``include_delayed``: also move the clock to each delayed message (a retry's backoff, a
        ``send_with(delay=)``) and run it, until nothing is delayed either. ``timeout``: wall
        seconds before :class:`NotIdle`. A task dead-lettered meanwhile raises its exception
        (or :class:`DeadLettered`) once the queues are idle, unless ``raise_errors`` is False.
        """
        start = len(self._recorder.runs)
        while True:
            self._loop.run(self._drain(timeout), timeout=timeout + 10.0)
            due = _store.next_due(self.store) if include_delayed else None
            if due is None:
                break
            self.store.advance(max(0.0, due - self.clock()))
        fresh = self._new_dead_letters()
        raising = self.raise_errors if raise_errors is None else raise_errors
        errors = [self._exception(dead) for dead in fresh]
        if errors and raising:
            raise errors[0]
        self.errors.extend(errors)
        return self._recorder.runs[start:]

    def _specs(self) -> list[QueueSpec]:
        """The app's queues, and every other queue something was sent to (not the dead-letter queues)."""
        with self.store.lock:
            known = [name for name in self.store.queues if not name.endswith(".dlq")]
        names = list(dict.fromkeys(self.app.queues() + known))
        return [self.app.queue_spec(name) for name in names]

    def _idle(self, specs: Sequence[QueueSpec]) -> bool:
        self.store.tick()
        with self.store.lock:
            queues = self.store.queues
            if any(queues[s.name].ready for s in specs if s.name in queues):
                return False
            return not any(broker.unacked for broker in self.store.brokers)

    async def _drain(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            specs = self._specs()
            if self._idle(specs):
                return
            self._generation += 1
            worker = make_worker(self.url, queues=specs, tasks=self._recorder.recording(self.app.tasks),
                                 name=f"fairq-testing-{self._generation}", threads=self.threads,
                                 prefetch=self.prefetch, max_message_bytes=self.app.max_message_bytes,
                                 delivery_limit=self.app.delivery_limit, rng=self._rng)
            running = asyncio.ensure_future(worker.run())
            timed_out = False
            try:
                while not running.done() and not self._idle(specs) and set(self._specs()) <= set(specs):
                    if loop.time() > deadline:
                        timed_out = True
                        raise NotIdle(f"queues still busy after {timeout:g} s: {self._describe_busy()}")
                    await asyncio.sleep(POLL)
            finally:
                if not running.done():
                    worker.abort() if timed_out else worker.stop()  # on a timeout, what runs is left running
                    await asyncio.wait_for(asyncio.shield(running), 10.0)
            running.result()  # an internal error of the worker surfaces here
            # Ended by itself: a sync task overran its time limit and the worker must be replaced, as
            # in production; or a new queue appeared (a task sent to it): a worker consuming it too.

    def _describe_busy(self) -> str:
        with self.store.lock:
            ready = {name: len(q.ready) for name, q in self.store.queues.items() if q.ready}
            unacked = sum(len(b.unacked) for b in self.store.brokers)
        return f"ready {ready or 'none'}, running {unacked}"

    # -- what happened ------------------------------------------------------------------

    @property
    def runs(self) -> list[Run]:
        """Every task call so far, in the order they ended (a retried task appears once per attempt)."""
        return list(self._recorder.runs)

    def results(self, task: Task[Any, Any] | str) -> list[Any]:
        """The return values of ``task``'s successful runs, in order."""
        name = task if isinstance(task, str) else task.name
        return [run.result for run in self._recorder.runs if run.task == name and run.ok]

    def dead_letters(self, queue: str | Task[Any, Any] = "default") -> list[DeadLetter]:
        """What sits in ``queue``'s dead-letter queue (``QUEUE.dlq``), oldest first, with reason and error."""
        name = queue if isinstance(queue, str) else queue.queue
        return [describe(message.envelope) for message in self._dead_messages(name)]

    def pending(self, queue: str | Task[Any, Any] = "default") -> int:
        """Messages ready in ``queue`` now (not counting delayed ones)."""
        name = queue if isinstance(queue, str) else queue.queue
        with self.store.lock:
            q = self.store.queues.get(name)
            return len(q.ready) if q is not None else 0

    def delayed(self) -> int:
        """Messages waiting for the clock (delays and retry backoff), all queues together."""
        return _store.delayed_count(self.store)

    def _dead_messages(self, queue: str) -> list[Any]:
        with self.store.lock:
            q = self.store.queues.get(dead_letter_queue(queue))
            return sorted(q.ready) if q is not None else []

    def _new_dead_letters(self) -> list[DeadLetter]:
        fresh: list[DeadLetter] = []
        with self.store.lock:
            names = [name.removesuffix(".dlq") for name in self.store.queues if name.endswith(".dlq")]
        for queue in names:
            for message in self._dead_messages(queue):
                if message.seq not in self._reported:
                    self._reported.add(message.seq)
                    fresh.append(describe(message.envelope))
        return fresh

    def _exception(self, dead: DeadLetter) -> BaseException:
        found = self._recorder.exception_for(dead)
        if found is not None:
            return found
        if dead.error_type == error_type(TimeLimitExceeded("")):
            return TimeLimitExceeded(dead.error_message or "time limit exceeded")
        return DeadLettered(dead)


@contextmanager
def run_tasks(app: App, **options: Any) -> Iterator[TestQueue]:
    """``with run_tasks(app) as q:`` — a :class:`TestQueue` for the block; the app's broker is restored after."""
    queue = TestQueue(app, **options)
    try:
        yield queue
    finally:
        queue.close()
