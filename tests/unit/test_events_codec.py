"""The events wire format (docs/events.md): what a worker writes reads back as it was; what a listener
cannot read is refused with a clear error, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairq.errors import EventFormatError, FairqError, UnknownEventKind, UnsupportedEventVersion
from fairq.events import (
    FORMAT_VERSION,
    Counters,
    RunningTask,
    TaskEvent,
    WorkerHeartbeat,
    WorkerOffline,
    WorkerOnline,
    as_json,
    decode,
    decode_batch,
)
from fairq.events.codec import TASK_FIELDS, encode_task_batch, encode_worker_batch, task_kind, task_row, worker_fields
from fairq.worker import hooks

AT = 1_790_000_000.25
SENT = AT - 1.5
BASE: dict[str, Any] = dict(message_id="m1", task="tasks.resize", queue="images", worker="w.1", attempt=2, sent=SENT)


def roundtrip(event: hooks.Event) -> TaskEvent:
    kind = task_kind(event)
    batch = decode_batch(encode_task_batch(kind, "w.1", 3, 17, [task_row(kind, event)]))
    assert (batch.key, batch.worker, batch.process, batch.seq) == (f"task.{kind}", "w.1", 3, 17)
    (decoded,) = batch.events
    assert isinstance(decoded, TaskEvent)
    return decoded


def test_every_hook_event_reads_back_as_its_task_event_with_its_fields() -> None:
    received = roundtrip(hooks.Received(at=AT, **BASE))
    assert (received.kind, received.worker, received.process, received.at, received.message_id, received.task,
            received.queue, received.attempt, received.sent) == ("received", "w.1", 3, AT, "m1", "tasks.resize",
                                                                 "images", 2, SENT)
    assert (received.slot, received.wait, received.run) == (None, None, None)
    started = roundtrip(hooks.Started(at=AT, slot=1, **BASE))
    assert (started.kind, started.slot, started.wait, started.run) == ("started", 1, 1.5, None)
    ok = roundtrip(hooks.Finished(at=AT + 0.25, outcome="ok", seconds=0.25, slot=1, **BASE))
    assert (ok.kind, ok.slot, ok.wait, ok.run, ok.error) == ("succeeded", 1, 1.5, 0.25, None)
    failed = roundtrip(hooks.Finished(at=AT + 0.25, outcome="retry", seconds=0.25, slot=0,
                                      error="ValueError: no", **BASE))
    assert (failed.kind, failed.run, failed.error) == ("failed", 0.25, "ValueError: no")
    assert roundtrip(hooks.Finished(at=AT, outcome="dead-lettered", seconds=0.0, **BASE)).kind == "failed"
    assert roundtrip(hooks.Retried(at=AT, delay=2.5, **BASE)).delay == 2.5
    assert roundtrip(hooks.DeadLettered(at=AT, reason="task failed", **BASE)).reason == "task failed"
    assert roundtrip(hooks.HandedBack(at=AT, how="requeued", **BASE)).how == "requeued"


def test_a_message_without_a_timestamp_has_no_sent_and_no_wait() -> None:
    started = roundtrip(hooks.Started(at=AT, slot=0, **{**BASE, "sent": None}))
    assert started.sent is None and started.wait is None


def test_a_long_error_is_cut() -> None:
    failed = roundtrip(hooks.Finished(at=AT, outcome="retry", seconds=0.1, slot=0, error="E: " + "x" * 5000, **BASE))
    assert failed.error is not None and 500 <= len(failed.error) < 510 and failed.error.endswith("…")


def test_worker_events_read_back_as_they_were() -> None:
    identity: dict[str, Any] = dict(worker="w.1", process=2, at=AT, host="h", pid=42, node="n", processes=4, slots=3,
                                    policy="adaptive", queues=("a", "b"), version="0.1.0", broker="amqp://x/",
                                    interval=2.0)
    online = WorkerOnline(kind="online", **identity)
    beat = WorkerHeartbeat(kind="heartbeat", **identity, state="stopping", connected=False, window=12, parked=True,
                           held=5, held_not_started=2, running=(RunningTask("m", "t", 1, AT - 3, True),),
                           counters=Counters(1, 2, 3, 4, 5, 6), dropped=7)
    offline = WorkerOffline(kind="offline", **identity, counters=Counters(received=9), dropped=1)
    for event in (online, beat, offline):
        body = encode_worker_batch(event.kind, event.worker, event.process, 1, [worker_fields(event)])
        assert decode(body) == [event]


def test_columns_are_read_by_name_and_unknown_fields_and_columns_are_ignored() -> None:
    body = {"v": FORMAT_VERSION, "key": "task.started", "worker": "w", "process": 1, "seq": 1, "later": "ignored",
            "fields": ["slot", "future_column", "id", "at_us", "task", "queue", "attempt"],
            "events": [[2, {"x": 1}, "m", 1_000_000, "t", "q", 1]]}
    (event,) = decode(json.dumps(body).encode())
    assert isinstance(event, TaskEvent)
    assert (event.slot, event.message_id, event.at, event.sent, event.wait) == (2, "m", 1.0, None, None)


def batch_of_version(version: object) -> bytes:
    return json.dumps({"v": version, "key": "task.started", "worker": "w", "process": 1, "seq": 1,
                       "fields": list(TASK_FIELDS["started"]), "events": []}).encode()


def test_a_future_format_version_is_refused_with_a_clear_error() -> None:
    with pytest.raises(UnsupportedEventVersion) as caught:
        decode(batch_of_version(FORMAT_VERSION + 1))
    assert caught.value.version == FORMAT_VERSION + 1
    assert "format version 2" in str(caught.value) and "upgrade fairq" in str(caught.value)
    assert isinstance(caught.value, EventFormatError) and isinstance(caught.value, FairqError)


def test_an_older_format_version_is_refused_too() -> None:
    with pytest.raises(UnsupportedEventVersion, match="older fairq"):
        decode(batch_of_version(0))


def test_a_kind_this_fairq_does_not_know_is_its_own_error() -> None:
    body = json.dumps({"v": 1, "key": "task.teleported", "worker": "w", "process": 1, "seq": 1, "events": []})
    with pytest.raises(UnknownEventKind) as caught:
        decode(body.encode())
    assert caught.value.key == "task.teleported"


@pytest.mark.parametrize("body", [
    b"\xff\xfe not utf-8",
    b"not json",
    b"[1, 2]",
    b'{"key": "task.started"}',  # no version
    b'{"v": true, "key": "task.started"}',  # a boolean is not a version
    b'{"v": 1, "key": "task.started", "worker": "w", "process": 1, "seq": 1, "fields": ["at_us"], "events": [[1, 2]]}',
    b'{"v": 1, "key": "task.started", "worker": "w", "process": 1, "seq": 1, "fields": ["at_us", "id", "task", '
    b'"queue", "attempt"], "events": [[1.5, "m", "t", "q", 1]]}',  # a float where whole microseconds belong
    b'{"v": 1, "key": "worker.heartbeat", "worker": "w", "process": 1, "seq": 1, "events": ["not an object"]}',
    b'{"v": 1, "key": "worker.online", "worker": "w", "process": "1", "seq": 1, "events": []}',
])
def test_what_is_not_a_readable_batch_raises_event_format_error(body: bytes) -> None:
    with pytest.raises(EventFormatError):
        decode(body)


def test_as_json_is_flat_and_leaves_out_what_does_not_apply() -> None:
    started = roundtrip(hooks.Started(at=AT, slot=1, **BASE))
    out = as_json(started)
    assert out["key"] == "task.started" and out["slot"] == 1 and out["message_id"] == "m1"
    assert "run" not in out and "kind" not in out
    json.dumps(out)
