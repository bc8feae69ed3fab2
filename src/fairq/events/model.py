"""The events a listener receives, as plain frozen data (docs/events.md has the wire format).

Two families, each with its routing key ``FAMILY.KIND``:

- :class:`TaskEvent` (``task.received``, ``task.started``, ``task.succeeded``, ``task.failed``,
  ``task.retried``, ``task.dead-lettered``, ``task.handed-back``): one delivery's story on one
  worker process, in the order of the worker's hooks (fairq/worker/hooks.py).
- :class:`WorkerEvent`: :class:`WorkerOnline` once a process consumes, :class:`WorkerHeartbeat`
  every few seconds while it runs (what it runs, what it holds, its counters), and
  :class:`WorkerOffline` when it stops gracefully. A process that stops sending heartbeats
  without going offline is lost (killed, or cut off from the broker).

Every event names its ``worker`` (the process's name, as its log lines say) and ``process`` (its
number within its ``fairq worker``, 1 … processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..worker.snapshot import Counters, RunningTask

__all__ = ["Counters", "Event", "RunningTask", "TASK_KINDS", "TaskEvent", "WORKER_KINDS", "WorkerEvent",
           "WorkerHeartbeat", "WorkerOffline", "WorkerOnline", "routing_key"]

#: The kinds of task event, in the order a delivery's story can tell them.
TASK_KINDS = ("received", "started", "succeeded", "failed", "retried", "dead-lettered", "handed-back")
#: The kinds of worker event.
WORKER_KINDS = ("online", "heartbeat", "offline")


def routing_key(family: str, kind: str) -> str:
    """``task.started``, ``worker.heartbeat``: how an event is routed and what a listener's patterns match."""
    return f"{family}.{kind}"


@dataclass(frozen=True)
class TaskEvent:
    """Something that happened to one delivery on one worker process.

    Which optional fields are set depends on ``kind`` (docs/events.md has the table):
    ``slot`` and ``wait`` from ``started`` on, ``run`` on ``succeeded`` and ``failed``,
    ``delay`` on ``retried``, ``reason`` on ``dead-lettered``, ``how`` on ``handed-back``.
    """

    kind: str  #: one of :data:`TASK_KINDS`
    worker: str
    process: int
    at: float  #: ``time.time()`` on the worker when it happened
    message_id: str
    task: str  #: the task name (``"raw"`` for a plain message's handler)
    queue: str
    attempt: int  #: 1 for the first run; a retry's copy runs as 2, …
    sent: float | None = None  #: the producer's timestamp, if the message has one
    slot: int | None = None  #: which slot ran it, 0 … slots - 1 (``started``, ``succeeded``, ``failed``)
    #: Seconds from ``sent`` to its start (``started``, ``succeeded``, ``failed``; None without ``sent``).
    wait: float | None = None
    run: float | None = None  #: seconds it ran (``succeeded``, ``failed``)
    error: str | None = None  #: ``failed``: ``Type: message`` of what it raised
    delay: float | None = None  #: ``retried``: seconds until the next attempt is due
    reason: str | None = None  #: ``dead-lettered``: the dead-letter reason (``task failed``, ``unknown task``, …)
    how: str | None = None  #: ``handed-back``: ``requeued``, ``copy``, ``counted`` or ``lost`` (hooks.py)

    @property
    def key(self) -> str:
        return routing_key("task", self.kind)


@dataclass(frozen=True)
class WorkerEvent:
    """Something about a worker process itself; each one says who the process is, so a listener that
    joins late knows a worker from its next heartbeat alone."""

    kind: str  #: one of :data:`WORKER_KINDS`
    worker: str
    process: int
    at: float
    host: str
    pid: int
    node: str = ""  #: its ``fairq worker`` as a whole: ``--name``, else ``HOST.PID`` of the supervisor
    processes: int = 1  #: processes of that ``fairq worker`` (``-p``)
    slots: int = 1  #: task slots of this process (``-t``)
    policy: str = ""  #: the ``--prefetch`` policy
    queues: tuple[str, ...] = ()
    version: str = ""  #: the fairq version it runs
    broker: str = ""  #: the broker it is connected to (its URL, password removed)
    #: The node of a RabbitMQ cluster its session is on (``host:port``, one of the URL's hosts); "" while it
    #: has no session, and on SQLite and memory (one place).
    broker_node: str = ""
    interval: float = 0.0  #: seconds between its heartbeats (a listener calls it lost after a few missed)

    @property
    def key(self) -> str:
        return routing_key("worker", self.kind)


@dataclass(frozen=True)
class WorkerOnline(WorkerEvent):
    """The process consumes (sent once per process, when it first does)."""


@dataclass(frozen=True)
class WorkerHeartbeat(WorkerEvent):
    """What the process is doing now; sent every ``interval`` seconds while it runs."""

    state: str = "running"  #: ``running``, ``stopping`` or ``aborting``
    connected: bool = True  #: consuming on a live session (False while it reconnects)
    window: int = 0  #: its prefetch window now (0: no cap)
    parked: bool = False  #: adaptive: consuming paused while every slot runs a long task
    held: int = 0  #: deliveries it holds, not yet settled (running or waiting)
    held_not_started: int = 0  #: of those, tasks no slot has started: work an idle worker could be doing
    running: tuple[RunningTask, ...] = ()
    counters: Counters = field(default_factory=Counters)
    dropped: int = 0  #: events this process dropped so far (its buffer was full, or the broker pushed back)


@dataclass(frozen=True)
class WorkerOffline(WorkerEvent):
    """The process stopped (its last event): gracefully, or aborted by a second signal."""

    counters: Counters = field(default_factory=Counters)
    dropped: int = 0


Event = Union[TaskEvent, WorkerEvent]
