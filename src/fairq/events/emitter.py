"""One worker process's events: its hooks become task events, its state becomes online / heartbeat / offline.

The hot path is one append: a hook event goes into the bounded buffer as it is (the hook
vocabulary already holds every field), and nothing is encoded while a task runs. A flush
``linger`` seconds after the first pending event turns what waits into batches, one per
routing key, and hands each to the broker's event channel (``Broker.publish_event``), which
never waits: a batch it cannot take now is dropped and counted. So events cost a worker a
few microseconds per task and never sit between a delivery and its ack.

Order: within a flush, batches go out online first, then task events by kind in the order
of a delivery's story (received, started, succeeded, …), then heartbeat and offline, so
every message's events reach a listener in their order; a message whose story starts
again within one flush (handed back and received again, or its retry received) cuts the
flush in two.

While the worker has no broker session (reconnecting) task events stay in the buffer
(dropped once it is full) and only the newest heartbeat is kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..worker import hooks
from .buffer import DEFAULT_CAPACITY, EventBuffer
from .codec import encode_task_batch, encode_worker_batch, task_kind, task_row, worker_fields
from .model import TASK_KINDS, WorkerEvent, WorkerHeartbeat, WorkerOffline, WorkerOnline, routing_key

if TYPE_CHECKING:
    from ..worker.worker import Worker

__all__ = ["DEFAULT_HEARTBEAT", "EventEmitter", "EventOptions", "emitter_for"]

log = logging.getLogger("fairq.events")

#: Seconds between a worker process's heartbeats.
DEFAULT_HEARTBEAT = 2.0
#: Seconds a flush waits after the first pending event, gathering more into the same batches.
DEFAULT_LINGER = 0.1
#: Events per batch at most (one broker message; about 100 KB).
MAX_BATCH = 500
_ORDER = {kind: index for index, kind in enumerate(TASK_KINDS)}
_HOOK_KINDS = (hooks.Received, hooks.Started, hooks.Finished, hooks.Retried, hooks.DeadLettered, hooks.HandedBack)


@dataclass(frozen=True)
class EventOptions:
    """How a worker process emits events (``Worker(events=...)``)."""

    process: int = 1  #: this process's number within its ``fairq worker`` (1 … processes)
    processes: int = 1
    node: str | None = None  #: the ``fairq worker`` as a whole (default: the worker's name)
    heartbeat: float = DEFAULT_HEARTBEAT  #: seconds between heartbeats
    capacity: int = DEFAULT_CAPACITY  #: task events kept while they cannot be sent
    linger: float = DEFAULT_LINGER


class EventEmitter:
    """Subscribes to ``worker``'s hooks at once; :meth:`start` and :meth:`close` follow :meth:`Worker.run`."""

    def __init__(self, worker: Worker, options: EventOptions) -> None:
        if options.heartbeat <= 0:
            raise ValueError("the heartbeat interval must be > 0")
        self._worker = worker
        self.options = options
        self._buffer: EventBuffer[hooks.Event] = EventBuffer(options.capacity)
        self._online: WorkerOnline | None = None  # pending
        self._heartbeat: WorkerHeartbeat | None = None  # pending, the newest only
        self._offline: WorkerOffline | None = None  # pending
        self._was_online = False
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._beats: asyncio.Task[None] | None = None
        from .. import __version__  # here: fairq/__init__ may still be importing when this module is

        self._identity = {"host": socket.gethostname(), "pid": os.getpid(), "node": options.node or worker.name,
                          "processes": options.processes, "slots": worker.threads, "policy": str(worker.prefetch),
                          "queues": tuple(q.name for q in worker.queues), "version": __version__,
                          "interval": options.heartbeat}
        worker.hooks.subscribe(self._on_hook, *_HOOK_KINDS)

    @property
    def dropped(self) -> int:
        """Events dropped so far: the buffer was full, or the broker could not take a batch."""
        return self._buffer.dropped

    # -- lifecycle (on the worker's loop) ----------------------------------------------------------

    def start(self) -> None:
        """Begin: online once the worker first consumes, then a heartbeat every interval."""
        if self._beats is None:
            self._beats = asyncio.ensure_future(self._beat())

    async def close(self) -> None:
        """The worker is done: offline (if it was online) and a last flush. Never raises."""
        if self._beats is not None:
            self._beats.cancel()
            self._beats = None
        if self._was_online or self._online is not None:
            snap = self._worker.snapshot()
            self._offline = WorkerOffline(**self._base("offline"), counters=snap.counters, dropped=self.dropped)
            self._heartbeat = None
        self._flush()

    async def _beat(self) -> None:
        worker = self._worker
        await worker.ready.wait()
        self._online = WorkerOnline(**self._base("online"))
        self._flush()
        while True:
            await asyncio.sleep(self.options.heartbeat)
            self._heartbeat = self.heartbeat()
            self._flush()

    def heartbeat(self) -> WorkerHeartbeat:
        """The worker's heartbeat event now (from :meth:`Worker.snapshot`)."""
        snap = self._worker.snapshot()
        return WorkerHeartbeat(
            **self._base("heartbeat"), state=snap.state, connected=snap.connected, window=snap.window,
            parked=snap.parked, held=snap.held, held_not_started=snap.held_not_started, running=snap.running,
            counters=snap.counters, dropped=self.dropped)

    def _base(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "worker": self._worker.name, "process": self.options.process, "at": time.time(),
                "broker": self._worker.broker.display_url, "broker_node": self._worker.broker.node, **self._identity}

    # -- the hot path ------------------------------------------------------------------------------

    def _on_hook(self, event: hooks.Event) -> None:
        if self._buffer.add(event) and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.options.linger, self._flush)

    # -- flushing ----------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand what waits to the broker's event channel (kept for later while there is no session)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        worker = self._worker
        if not worker.ready.is_set():
            return  # reconnecting: kept (bounded) for the next session; its first heartbeat flushes
        tasks: dict[str, list[list[Any]]] = {}
        if self._online is not None:
            self._publish_worker(self._online)
            self._online = None
            self._was_online = True
        last: dict[str, int] = {}
        for event in self._buffer.take():
            kind = task_kind(event)
            order = _ORDER[kind]
            if last.get(event.message_id, -1) >= order:
                # This message's story starts again (handed back and received again, a retry received):
                # what came before goes first.
                self._publish_tasks(tasks)
                tasks, last = {}, {}
            last[event.message_id] = order
            tasks.setdefault(kind, []).append(task_row(kind, event))
        self._publish_tasks(tasks)
        for pending in (self._heartbeat, self._offline):
            if pending is not None:
                self._publish_worker(pending)
        self._heartbeat = self._offline = None

    def _publish_tasks(self, tasks: dict[str, list[list[Any]]]) -> None:
        """One batch per kind (split at :data:`MAX_BATCH`), in the order of a delivery's story."""
        for kind in sorted(tasks, key=_ORDER.__getitem__):
            rows = tasks[kind]
            for start in range(0, len(rows), MAX_BATCH):
                chunk = rows[start:start + MAX_BATCH]
                self._seq += 1
                body = encode_task_batch(kind, self._worker.name, self.options.process, self._seq, chunk)
                if not self._worker.broker.publish_event(routing_key("task", kind), body):
                    self._buffer.lost(len(chunk))

    def _publish_worker(self, event: WorkerEvent) -> None:
        self._seq += 1
        body = encode_worker_batch(event.kind, self._worker.name, self.options.process, self._seq,
                                   [worker_fields(event)])
        if not self._worker.broker.publish_event(event.key, body):
            self._buffer.lost(1)


def emitter_for(worker: Worker, events: bool | EventOptions) -> EventEmitter | None:
    """What ``Worker(events=...)`` makes: None for False, else an emitter with the options (or the defaults)."""
    if events is False:
        return None
    return EventEmitter(worker, EventOptions() if events is True else events)

