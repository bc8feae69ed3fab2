"""The SQL of queues and messages: each function runs on the database thread, inside a transaction."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ... import message as wire
from ...errors import PublishRejected, QueueFull
from ...message import Envelope
from ..base import QueueSpec, QueueStats
from ..topology import dead_letter_queue
from .wake import consumers_of

#: The one kind of queue this backend has: what ``queues.kind`` holds and ``stats`` reports.
KIND = "sqlite"


@dataclass(frozen=True)
class Row:
    """A claimed message as the broker hands it out."""

    id: int
    envelope: Envelope
    delivery_count: int
    redelivered: bool


_COLUMNS = "id, body, headers, message_id, content_type, timestamp, persistent, delivery_count, redelivered"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"header value of type {type(value).__name__} cannot be stored")


def _row(values: tuple[Any, ...]) -> Row:
    ident, body, headers, message_id, content_type, stamp, persistent, count, redelivered = values
    envelope = Envelope(bytes(body), json.loads(headers), message_id, content_type,
                        datetime.fromisoformat(stamp) if stamp else None, bool(persistent))
    return Row(ident, envelope, count, bool(redelivered))


def declare(conn: sqlite3.Connection, spec: QueueSpec) -> None:
    """Create ``spec.name`` and its dead-letter queue unless they exist (an existing one is kept as it is).

    ``spec.options`` (other backends' settings, such as RabbitMQ's queue type) are ignored:
    every queue here is the same kind, and ``kind`` says so."""
    conn.execute("INSERT OR IGNORE INTO queues (name, kind, max_length, delivery_limit) VALUES (?, ?, ?, ?)",
                 (spec.name, KIND, spec.max_length, spec.delivery_limit))
    conn.execute("INSERT OR IGNORE INTO queues (name, kind) VALUES (?, ?)", (dead_letter_queue(spec.name), KIND))


def exists(conn: sqlite3.Connection, queue: str) -> bool:
    return conn.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone() is not None


def _ready(conn: sqlite3.Connection, queue: str, now: float) -> int:
    return int(conn.execute("SELECT count(*) FROM messages WHERE queue = ? AND session IS NULL AND ready_at <= ?",
                            (queue, now)).fetchone()[0])


def publish(conn: sqlite3.Connection, queue: str, envelope: Envelope, delay: float) -> list[str]:
    """Store one message; the wake addresses of the queue's consumers (to notify after the commit)."""
    spec = conn.execute("SELECT max_length FROM queues WHERE name = ?", (queue,)).fetchone()
    if spec is None:
        raise PublishRejected(f"publish to {queue!r}: no such queue (declare it first)")
    now = time.time()
    if spec[0] is not None and _ready(conn, queue, now) >= spec[0]:
        raise QueueFull(f"queue {queue!r} is full ({spec[0]} ready messages)")
    stamp = envelope.timestamp.isoformat() if envelope.timestamp else None
    conn.execute(
        "INSERT INTO messages (queue, body, headers, message_id, content_type, timestamp, persistent, ready_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (queue, envelope.body, json.dumps(envelope.headers, default=_json_default), envelope.message_id,
         envelope.content_type, stamp, int(envelope.persistent), now + max(0.0, delay)))
    return consumers_of(conn, [queue])


def claim(conn: sqlite3.Connection, queue: str, session: int, limit: int) -> tuple[list[Row], float | None] | None:
    """Claim up to ``limit`` ready messages of ``queue`` for ``session``, oldest first.

    Returns the rows and the ``ready_at`` of the next delayed message (None if there is none),
    or None if the queue does not exist. A message lost more than the queue's delivery limit
    moves to the dead-letter queue instead, with the reason ``delivery limit``.
    """
    spec = conn.execute("SELECT delivery_limit FROM queues WHERE name = ?", (queue,)).fetchone()
    if spec is None:
        return None
    max_lost = spec[0]
    now = time.time()
    rows: list[Row] = []
    while len(rows) < limit:
        found = [_row(values) for values in conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND session IS NULL AND ready_at <= ? "
            "ORDER BY id LIMIT ?", (queue, now, limit - len(rows)))]
        if not found:
            break
        for row in found:
            if max_lost is not None and row.delivery_count > max_lost:
                _dead(conn, queue, row, now)
            else:
                conn.execute("UPDATE messages SET session = ? WHERE id = ?", (session, row.id))
                rows.append(row)
    following = None
    if len(rows) < limit:
        following = conn.execute("SELECT min(ready_at) FROM messages WHERE queue = ? AND session IS NULL",
                                 (queue,)).fetchone()[0]
    return rows, following


def _dead(conn: sqlite3.Connection, queue: str, row: Row, now: float) -> None:
    headers = {k: v for k, v in row.envelope.headers.items() if not k.startswith("x-")}
    headers.update(wire.dead_letter_headers(wire.REASON_DELIVERY_LIMIT), **wire.dead_letter_stamp(queue))
    conn.execute("UPDATE messages SET queue = ?, headers = ?, ready_at = ?, delivery_count = 0, redelivered = 0 "
                 "WHERE id = ?", (dead_letter_queue(queue), json.dumps(headers, default=_json_default), now, row.id))


def requeue(conn: sqlite3.Connection, ident: int, session: int, queue: str) -> list[str]:
    """Give a claim back at its old place in the queue (a settlement: ``delivery_count`` stays)."""
    conn.execute("UPDATE messages SET session = NULL, redelivered = 1 WHERE id = ? AND session = ?", (ident, session))
    return consumers_of(conn, [queue])


def release(conn: sqlite3.Connection, idents: list[int], session: int) -> None:
    """Give back claims never handed to a handler (not a delivery: no count, no ``redelivered``)."""
    conn.executemany("UPDATE messages SET session = NULL WHERE id = ? AND session = ?",
                     [(ident, session) for ident in idents])


def add_consumer(conn: sqlite3.Connection, session: int, queue: str, wake: str | None) -> int | None:
    if not exists(conn, queue):
        return None
    if wake is not None:
        conn.execute("UPDATE sessions SET wake = ? WHERE id = ?", (wake, session))
    cur = conn.execute("INSERT INTO consumers (session, queue) VALUES (?, ?)", (session, queue))
    return cur.lastrowid


def remove_consumer(conn: sqlite3.Connection, ident: int) -> None:
    conn.execute("DELETE FROM consumers WHERE id = ?", (ident,))


def stats(conn: sqlite3.Connection, queue: str) -> QueueStats | None:
    if not exists(conn, queue):
        return None
    consumers = conn.execute("SELECT count(*) FROM consumers WHERE queue = ?", (queue,)).fetchone()[0]
    unacked = conn.execute("SELECT count(*) FROM messages WHERE queue = ? AND session IS NOT NULL",
                           (queue,)).fetchone()[0]
    return QueueStats(queue, _ready(conn, queue, time.time()), int(consumers), unacked=int(unacked), kind=KIND)


def names(conn: sqlite3.Connection) -> list[str]:
    """Every queue in the file."""
    return [row[0] for row in conn.execute("SELECT name FROM queues ORDER BY name")]


def purge(conn: sqlite3.Connection, queue: str) -> int:
    """Delete the ready messages (not those claimed, nor delayed ones still held)."""
    return conn.execute("DELETE FROM messages WHERE queue = ? AND session IS NULL AND ready_at <= ?",
                        (queue, time.time())).rowcount


def delete(conn: sqlite3.Connection, queue: str) -> list[str]:
    """Delete the queue and all its messages; the wake addresses of its consumers (they find it gone)."""
    woken = consumers_of(conn, [queue])
    conn.execute("DELETE FROM messages WHERE queue = ?", (queue,))
    conn.execute("DELETE FROM consumers WHERE queue = ?", (queue,))
    conn.execute("DELETE FROM queues WHERE name = ?", (queue,))
    return woken
