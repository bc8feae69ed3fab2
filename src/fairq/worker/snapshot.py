"""What one worker process is doing right now, as plain frozen data: :meth:`Worker.snapshot`.

Heartbeats (:mod:`fairq.events`), metrics gauges and status read this instead of the
worker's internals, so those can change without breaking them. A snapshot is built from
state the worker keeps anyway (the slots' :class:`~fairq.worker.slots.Running` records,
the prefetch window's counts) and from the totals a :class:`TaskCounter` keeps, so taking
one costs microseconds and never touches the broker. Take it on the worker's event loop.

The number fair dispatch is about is :attr:`WorkerSnapshot.held_not_started`: tasks this
worker holds (the broker counts them as its unacked deliveries) that no slot has started,
work another, idle, worker could be running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .hooks import DeadLettered, Event, Finished, HandedBack, Hooks, Received, Retried

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Counters", "RunningTask", "TaskCounter", "WorkerSnapshot", "take"]


@dataclass(frozen=True)
class RunningTask:
    """One task a slot runs now."""

    message_id: str
    task: str  #: task name, or ``"raw"`` for a plain message's handler
    #: Which slot, 0 … slots - 1: a sync task's thread, an async task's place on the loop (a worker running
    #: both kinds of task can have a sync and an async task on the same number).
    slot: int
    started: float  #: ``time.time()`` when the slot started it
    sync: bool  #: on a thread (a sync task) rather than on the loop
    queue: str = ""  #: the queue it came from ("" from a worker older than this field)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds it has run by ``now`` (default: now)."""
        return max(0.0, (time.time() if now is None else now) - self.started)


@dataclass(frozen=True)
class Counters:
    """Totals since the worker process started (they survive reconnects)."""

    received: int = 0  #: deliveries the pipeline took (a redelivery counts again)
    succeeded: int = 0  #: runs that ended well (acked)
    failed: int = 0  #: runs that raised (each followed by a retry or a dead letter)
    retried: int = 0  #: retry copies the broker confirmed
    dead_lettered: int = 0  #: dead letters the broker confirmed (failed runs and refused messages)
    handed_back: int = 0  #: deliveries given back unstarted (stop, rebalance, lost channel)


class TaskCounter:
    """Counts what the hooks report, for :attr:`WorkerSnapshot.counters` (a hooks subscriber).

    Not Started: a sync task's Started costs the loop a wake-up, and nobody needs its count
    (running tasks are in the snapshot)."""

    KINDS: tuple[type[Event], ...] = (Received, Finished, Retried, DeadLettered, HandedBack)

    def __init__(self) -> None:
        self.received = self.succeeded = self.failed = self.retried = self.dead_lettered = self.handed_back = 0

    def attach(self, hooks: Hooks) -> None:
        hooks.subscribe(self, *self.KINDS)

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is Received:
            self.received += 1
        elif kind is Finished:
            if event.outcome == "ok":  # type: ignore[attr-defined]
                self.succeeded += 1
            else:
                self.failed += 1
        elif kind is Retried:
            self.retried += 1
        elif kind is DeadLettered:
            self.dead_lettered += 1
        elif kind is HandedBack:
            self.handed_back += 1

    def counters(self) -> Counters:
        return Counters(self.received, self.succeeded, self.failed, self.retried, self.dead_lettered, self.handed_back)


@dataclass(frozen=True)
class WorkerSnapshot:
    """One worker process at one moment (:meth:`Worker.snapshot`)."""

    worker: str  #: the worker's name (``--name``, numbered per process, else ``HOST.PID``)
    at: float  #: ``time.time()`` when it was taken
    state: str  #: ``running``, ``stopping`` (no new tasks, running ones finish) or ``aborting``
    connected: bool  #: consuming on a live broker session (False while reconnecting)
    queues: tuple[str, ...]
    slots: int  #: task slots (``-t``)
    policy: str  #: the ``--prefetch`` policy as given: ``fair``, ``adaptive``, ``unlimited`` or a number
    #: The prefetch window now: unacked deliveries the broker may push to each consumer (0: no cap).
    window: int
    parked: bool  #: adaptive only: every slot runs a long task, so it stopped consuming for a while
    held: int  #: deliveries in hand and not yet settled: running, waiting for a slot, or being settled
    held_not_started: int  #: of those, tasks waiting for a slot: held here, not running
    running: tuple[RunningTask, ...] = ()
    counters: Counters = field(default_factory=Counters)

    @property
    def busy(self) -> int:
        """Slots running a task now."""
        return len(self.running)


def take(worker: Worker, counter: TaskCounter | None) -> WorkerSnapshot:
    """The snapshot of ``worker`` now (what :meth:`Worker.snapshot` returns)."""
    window = worker.window
    slots = worker.slots
    running: tuple[RunningTask, ...] = ()
    waiting = 0
    if slots._runner is not None:  # open: the worker is running
        records = sorted((r for r in slots.running() if r.started), key=lambda r: r.index)
        running = tuple(RunningTask(r.message_id, r.task, r.index, r.started, r.sync, r.queue) for r in records)
        waiting = slots.waiting
    return WorkerSnapshot(
        worker=worker.name,
        at=time.time(),
        state=worker.state.value,
        connected=worker.ready.is_set(),
        queues=tuple(spec.name for spec in worker.queues),
        slots=slots.count,
        policy=str(worker.prefetch),
        window=window.window,
        parked=window.parked,
        held=max(0, window.held),
        held_not_started=waiting,
        running=running,
        counters=counter.counters() if counter is not None else Counters(),
    )
