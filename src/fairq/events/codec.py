"""The events wire format, version 1 (docs/events.md): batches of events as JSON, and reading them strictly.

One broker message carries one *batch*: events of one routing key from one worker process,
``{"v": 1, "key": "task.started", "worker": …, "process": …, "seq": …, "fields": […], "events": […]}``.
Task events are rows under the batch's ``fields`` (column names), worker events objects; times
and durations are whole microseconds (``*_us``). Both are for cost: a draining worker makes
thousands of events a second, and one publish per event, or a float and a key name per field,
would cost more than its tasks do.

Reading is strict about what it cannot understand and lenient about what it need not: a batch
of another format version, or one that is not this format at all, raises
:class:`~fairq.errors.EventFormatError` (the listener counts it and goes on, it never crashes);
fields and columns this version does not know are ignored, so later releases of format 1 may add some.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EventFormatError, UnknownEventKind, UnsupportedEventVersion
from ..worker import hooks
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
    routing_key,
)

#: The version of the events format this fairq writes and reads.
FORMAT_VERSION = 1
CONTENT_TYPE = "application/json"
#: A failed event's ``error`` is cut to this many characters (the dead letter keeps the whole of it).
ERROR_CHARS = 500

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_US = 1_000_000
_COUNTERS = ("received", "succeeded", "failed", "retried", "dead_lettered", "handed_back")

# -- writing ---------------------------------------------------------------------------------

#: The columns of each kind of task event, in the order this fairq writes them (a batch names its own).
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "received": ("at_us", "id", "task", "queue", "attempt", "sent_us"),
    "started": ("at_us", "id", "task", "queue", "attempt", "sent_us", "slot", "wait_us"),
    "succeeded": ("at_us", "id", "task", "queue", "attempt", "sent_us", "slot", "wait_us", "run_us"),
    "failed": ("at_us", "id", "task", "queue", "attempt", "sent_us", "slot", "wait_us", "run_us", "error"),
    "retried": ("at_us", "id", "task", "queue", "attempt", "sent_us", "delay_us"),
    "dead-lettered": ("at_us", "id", "task", "queue", "attempt", "sent_us", "reason"),
    "handed-back": ("at_us", "id", "task", "queue", "attempt", "sent_us", "how"),
}


def task_kind(event: hooks.Event) -> str:
    """The task event kind a hook event becomes."""
    kind = type(event)
    if kind is hooks.Finished:
        return "succeeded" if event.outcome == "ok" else "failed"  # type: ignore[attr-defined]
    return _HOOK_KINDS[kind]


_HOOK_KINDS: dict[type[hooks.Event], str] = {
    hooks.Received: "received", hooks.Started: "started", hooks.Retried: "retried",
    hooks.DeadLettered: "dead-lettered", hooks.HandedBack: "handed-back",
}


def task_row(kind: str, event: hooks.Event) -> list[Any]:
    """The row of one task event (the columns of :data:`TASK_FIELDS` ``[kind]``), from the hook event it reports.

    Times and durations are whole microseconds: formatting a float is most of what encoding an
    event would cost otherwise, and a draining worker encodes thousands a second."""
    at = event.at
    sent = event.sent
    row: list[Any] = [int(at * _US), event.message_id, event.task, event.queue, event.attempt,
                      None if sent is None else int(sent * _US)]
    if kind == "started":
        row += [event.slot, None if sent is None else _micros(at - sent)]  # type: ignore[attr-defined]
    elif kind == "succeeded" or kind == "failed":
        run: float = event.seconds  # type: ignore[attr-defined]
        row += [event.slot, None if sent is None else _micros(at - run - sent), _micros(run)]  # type: ignore[attr-defined]
        if kind == "failed":
            error: str = event.error  # type: ignore[attr-defined]
            row.append(error if len(error) <= ERROR_CHARS else error[:ERROR_CHARS] + "…")
    elif kind == "retried":
        row.append(_micros(event.delay))  # type: ignore[attr-defined]
    elif kind == "dead-lettered":
        row.append(event.reason)  # type: ignore[attr-defined]
    elif kind == "handed-back":
        row.append(event.how)  # type: ignore[attr-defined]
    return row


def _micros(seconds: float) -> int:
    return int(seconds * _US + 0.5) if seconds > 0 else 0


def worker_fields(event: WorkerEvent) -> dict[str, Any]:
    """The JSON object of one worker event."""
    out: dict[str, Any] = {"at_us": int(event.at * _US), "host": event.host, "pid": event.pid, "node": event.node,
                           "processes": event.processes, "slots": event.slots, "policy": event.policy,
                           "queues": list(event.queues), "version": event.version, "broker": event.broker,
                           "broker_node": event.broker_node, "interval_us": _micros(event.interval)}
    if isinstance(event, WorkerHeartbeat):
        out.update(state=event.state, connected=event.connected, window=event.window, parked=event.parked,
                   held=event.held, held_not_started=event.held_not_started,
                   running=[{"id": r.message_id, "task": r.task, "slot": r.slot, "started_us": int(r.started * _US),
                             "sync": r.sync, "queue": r.queue} for r in event.running],
                   counters=_counters_out(event.counters), dropped=event.dropped)
    elif isinstance(event, WorkerOffline):
        out.update(counters=_counters_out(event.counters), dropped=event.dropped)
    return out


def _counters_out(counters: Counters) -> dict[str, int]:
    return {name: getattr(counters, name) for name in _COUNTERS}


def encode_task_batch(kind: str, worker: str, process: int, seq: int, rows: list[list[Any]]) -> bytes:
    """One message body: task events of ``kind`` as rows of :func:`task_row`."""
    return _JSON.encode({"v": FORMAT_VERSION, "key": routing_key("task", kind), "worker": worker, "process": process,
                         "seq": seq, "fields": TASK_FIELDS[kind], "events": rows}).encode()


def encode_worker_batch(kind: str, worker: str, process: int, seq: int, events: list[dict[str, Any]]) -> bytes:
    """One message body: worker events of ``kind`` as objects of :func:`worker_fields`."""
    return _JSON.encode({"v": FORMAT_VERSION, "key": routing_key("worker", kind), "worker": worker,
                         "process": process, "seq": seq, "events": events}).encode()


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """One decoded batch: its events and where they came from."""

    key: str
    worker: str
    process: int
    seq: int  #: the worker process's batch counter: a gap means batches lost on the way
    events: list[Event]


def decode(body: bytes) -> list[Event]:
    """The events of one batch, in order (see :func:`decode_batch`)."""
    return decode_batch(body).events


def decode_batch(body: bytes) -> Batch:
    """Read one batch; :class:`EventFormatError` if it cannot be read as format 1
    (:class:`UnsupportedEventVersion` for another version, :class:`UnknownEventKind` for a kind this
    fairq does not know)."""
    try:
        batch = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventFormatError(f"an event batch that is not JSON ({exc})") from None
    if not isinstance(batch, dict):
        raise EventFormatError("an event batch that is not a JSON object")
    version = batch.get("v")
    if type(version) is not int:
        raise EventFormatError("an event batch without a format version (\"v\"): not fairq events")
    if version != FORMAT_VERSION:
        raise UnsupportedEventVersion(version, FORMAT_VERSION)
    key = _get(batch, "key", str, "batch")
    worker = _get(batch, "worker", str, "batch")
    process = _get(batch, "process", int, "batch")
    seq = _get(batch, "seq", int, "batch")
    items = _get(batch, "events", list, "batch")
    family, _, kind = key.partition(".")
    where = f"batch of {key} from {worker}"
    events: list[Event]
    if family == "task" and kind in TASK_KINDS:
        fields = _get(batch, "fields", list, "batch")
        if not all(isinstance(f, str) for f in fields):
            raise EventFormatError(f"{where}: field names that are not strings")
        events = [_task(kind, worker, process, fields, row, where) for row in items]
    elif family == "worker" and kind in WORKER_KINDS:
        events = [_WORKER_READERS[kind](worker, process, _object(item, where), where) for item in items]
    else:
        raise UnknownEventKind(key)
    return Batch(key, worker, process, seq, events)


def as_json(event: Event) -> dict[str, Any]:
    """One decoded event as a flat JSON object (``fairq events --json``): ``key``, then its fields,
    those that do not apply left out."""
    out: dict[str, Any] = {"key": event.key}
    for name, value in dataclasses.asdict(event).items():
        if value is not None and name != "kind":
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _object(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise EventFormatError(f"{where}: an event that is not a JSON object")
    return item


def _get(obj: Mapping[str, Any], name: str, kind: type, where: str, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if type(value) is not kind:
        what = "missing" if value is None else f"a {type(value).__name__}, not a {kind.__name__}"
        raise EventFormatError(f"{where}: field {name!r} is {what}")
    return value


def _task(kind: str, worker: str, process: int, fields: list[str], row: Any, where: str) -> TaskEvent:
    if not isinstance(row, list) or len(row) != len(fields):
        raise EventFormatError(f"{where}: a row that does not match its fields")
    item = dict(zip(fields, row))
    return TaskEvent(
        kind=kind, worker=worker, process=process,
        at=_time(item, "at_us", where), message_id=_get(item, "id", str, where), task=_get(item, "task", str, where),
        queue=_get(item, "queue", str, where), attempt=_get(item, "attempt", int, where),
        sent=_time(item, "sent_us", where, True), slot=_get(item, "slot", int, where, True),
        wait=_time(item, "wait_us", where, True), run=_time(item, "run_us", where, True),
        error=_get(item, "error", str, where, True), delay=_time(item, "delay_us", where, True),
        reason=_get(item, "reason", str, where, True), how=_get(item, "how", str, where, True),
    )


def _time(item: Mapping[str, Any], name: str, where: str, optional: bool = False) -> Any:
    """A ``*_us`` field (whole microseconds) as float seconds."""
    value = _get(item, name, int, where, optional)
    return None if value is None else value / _US


def _base(kind: str, worker: str, process: int, item: dict[str, Any], where: str) -> dict[str, Any]:
    queues = _get(item, "queues", list, where)
    if not all(isinstance(q, str) for q in queues):
        raise EventFormatError(f"{where}: field 'queues' holds something other than names")
    return {"kind": kind, "worker": worker, "process": process, "at": _time(item, "at_us", where),
            "host": _get(item, "host", str, where), "pid": _get(item, "pid", int, where),
            "node": _get(item, "node", str, where), "processes": _get(item, "processes", int, where),
            "slots": _get(item, "slots", int, where), "policy": _get(item, "policy", str, where),
            "queues": tuple(queues), "version": _get(item, "version", str, where),
            "broker": _get(item, "broker", str, where), "interval": _time(item, "interval_us", where),
            "broker_node": _get(item, "broker_node", str, where, optional=True) or ""}  # added within version 1


def _online(worker: str, process: int, item: dict[str, Any], where: str) -> WorkerOnline:
    return WorkerOnline(**_base("online", worker, process, item, where))


def _heartbeat(worker: str, process: int, item: dict[str, Any], where: str) -> WorkerHeartbeat:
    running = tuple(RunningTask(_get(r, "id", str, where), _get(r, "task", str, where), _get(r, "slot", int, where),
                                _time(r, "started_us", where), _get(r, "sync", bool, where),
                                _get(r, "queue", str, where, True) or "")
                    for r in (_object(r, where) for r in _get(item, "running", list, where)))
    return WorkerHeartbeat(
        **_base("heartbeat", worker, process, item, where), state=_get(item, "state", str, where),
        connected=_get(item, "connected", bool, where), window=_get(item, "window", int, where),
        parked=_get(item, "parked", bool, where), held=_get(item, "held", int, where),
        held_not_started=_get(item, "held_not_started", int, where), running=running,
        counters=_counters_in(item, where), dropped=_get(item, "dropped", int, where))


def _offline(worker: str, process: int, item: dict[str, Any], where: str) -> WorkerOffline:
    return WorkerOffline(**_base("offline", worker, process, item, where), counters=_counters_in(item, where),
                         dropped=_get(item, "dropped", int, where))


def _counters_in(item: dict[str, Any], where: str) -> Counters:
    counters = _object(item.get("counters"), where)
    return Counters(**{name: _get(counters, name, int, where) for name in _COUNTERS})


_WORKER_READERS: dict[str, Callable[[str, int, dict[str, Any], str], WorkerEvent]] = {
    "online": _online, "heartbeat": _heartbeat, "offline": _offline,
}
