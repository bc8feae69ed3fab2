"""Worker events: what every worker process tells about its tasks and itself, and listening to it.

- :mod:`.model`: the events a listener gets (:class:`TaskEvent`, :class:`WorkerOnline`,
  :class:`WorkerHeartbeat`, :class:`WorkerOffline`);
- :mod:`.codec`: the versioned JSON wire format (docs/events.md), read strictly;
- :mod:`.buffer`: the bounded buffer that drops and counts rather than wait;
- :mod:`.emitter`: a worker's hooks and state turned into events (``Worker(events=...)``);
- :mod:`.listener`: :func:`listen` (async) and :func:`listen_sync`, for ``fairq events``,
  ``fairq status``, ``fairq top`` and the dashboard.

Events are best-effort: they may be dropped (and are counted when they are), never waited
for, and they never slow a task or hold up an ack.
"""

from __future__ import annotations

from .buffer import EventBuffer
from .codec import FORMAT_VERSION, Batch, as_json, decode, decode_batch
from .emitter import DEFAULT_HEARTBEAT, EventOptions
from .listener import EventFeed, EventStream, ListenerStats, listen, listen_sync
from .model import (
    TASK_KINDS,
    WORKER_KINDS,
    Counters,
    Event,
    RunningTask,
    TaskEvent,
    WorkerEvent,
    WorkerHeartbeat,
    WorkerOffline,
    WorkerOnline,
)

__all__ = [
    "DEFAULT_HEARTBEAT",
    "FORMAT_VERSION",
    "TASK_KINDS",
    "WORKER_KINDS",
    "Batch",
    "Counters",
    "Event",
    "EventBuffer",
    "EventFeed",
    "EventOptions",
    "EventStream",
    "ListenerStats",
    "RunningTask",
    "TaskEvent",
    "WorkerEvent",
    "WorkerHeartbeat",
    "WorkerOffline",
    "WorkerOnline",
    "as_json",
    "decode",
    "decode_batch",
    "listen",
    "listen_sync",
]
