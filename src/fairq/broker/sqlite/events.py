"""The SQLite broker's event channel: a capped ring of event batches in the database file, with wake-ups.

Publishing (:class:`EventWriter`): batches are written by a database connection of their
own (its own thread, ``synchronous=off``: events need no fsync, and they never queue behind
the broker's claims and acks), at most :data:`MAX_PENDING` waiting; a batch beyond that is
refused (the worker counts it as dropped). Nothing is stored while nobody listens (no
listener row with a live session): the batch is dropped at once, as RabbitMQ drops a message
nobody is bound for. Each write prunes the ring to :data:`RING` batches and :data:`MAX_AGE`
seconds, and the last listener to leave empties it, so the file never grows without bound.
Listeners are poked through their wake-up sockets (:mod:`.wake`) after each commit.

Listening (:func:`subscribe`): a row in ``event_listeners`` names the listener's session and
wake-up socket; its reader reads the batches after its cursor (from the newest row when it
subscribed: a listener sees what happens from now on), after a wake-up or every
:data:`~.wake.FALLBACK` seconds. A reader that fell behind the ring's oldest batch counts the
batches it missed. A listener that dies leaves a row naming a dead session: its session is
reaped (:mod:`.leases`) and the next write removes the row.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BrokerError
from ..base import EventHandler, EventSubscription
from ..topic import matcher
from .db import Database
from .wake import FALLBACK, WakeSocket, notify

if TYPE_CHECKING:
    from .broker import SQLiteBroker

log = logging.getLogger("fairq.broker")

#: Batches the ring keeps at most.
RING = 2000
#: Seconds a batch is kept at most.
MAX_AGE = 60.0
#: Batches waiting for the events connection at most; more are refused.
MAX_PENDING = 64
#: Batches a reader takes per read.
READ_BATCH = 200
#: How long closing waits for batches already taken to be written.
DRAIN_SECONDS = 1.0

_LIVE = "SELECT l.wake FROM event_listeners l JOIN sessions s ON s.id = l.session"


def store(conn: sqlite3.Connection, items: list[tuple[str, bytes]]) -> list[str]:
    """Store ``items`` if anyone listens (pruning the ring); the wake addresses to poke after the commit."""
    conn.execute("DELETE FROM event_listeners WHERE session NOT IN (SELECT id FROM sessions)")
    wakes = [row[0] for row in conn.execute(_LIVE)]
    if not wakes:
        conn.execute("DELETE FROM events")
        return []
    now = time.time()
    conn.executemany("INSERT INTO events (key, body, at) VALUES (?, ?, ?)", [(k, b, now) for k, b in items])
    newest = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0]
    conn.execute("DELETE FROM events WHERE id <= ? OR at < ?", (newest - RING, now - MAX_AGE))
    return [w for w in wakes if w]


def _anyone(conn: sqlite3.Connection) -> tuple[bool, bool]:
    """(a live listener exists, something to clean up: stale listener rows or stored batches)."""
    live = conn.execute(_LIVE + " LIMIT 1").fetchone() is not None
    stale = not live and (conn.execute("SELECT 1 FROM event_listeners LIMIT 1").fetchone() is not None
                          or conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None)
    return live, stale


class EventWriter:
    """One broker's event publishing, on a database connection (and thread) of its own, opened on first use."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: Database | None = None
        self._pending: list[tuple[str, bytes]] = []
        self._writing: asyncio.Task[None] | None = None
        #: Batches taken that could not be written (the database failed).
        self.lost = 0

    def publish(self, key: str, body: bytes) -> bool:
        if len(self._pending) >= MAX_PENDING:
            return False
        self._pending.append((key, body))
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write())
        return True

    async def _write(self) -> None:
        try:
            if self._db is None:
                self._db = Database(self._path, "off")
                await self._db.open()
            while self._pending:
                items, self._pending = self._pending, []
                live, stale = await self._db.run(_anyone)  # a read: nobody listening costs no write lock
                if live or stale:
                    notify(await self._db.write(partial(store, items=items if live else [])))
        except Exception as exc:  # the database failed: these batches are lost; the next ones try again
            self.lost += len(self._pending)
            self._pending.clear()
            log.debug("writing events to %s: %s", self._path, exc)
        finally:
            self._writing = None

    async def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Write what was taken (at most ``timeout`` seconds), then close the connection."""
        if self._writing is not None:
            await asyncio.wait({self._writing}, timeout=timeout)
            if self._writing is not None:
                self._writing.cancel()
        self._pending.clear()
        if self._db is not None:
            await self._db.close()
            self._db = None


def _register(conn: sqlite3.Connection, session: int, wake: str | None) -> tuple[int, int]:
    """Add a listener; (its row id, the newest batch id now: it reads what comes after)."""
    cur = conn.execute("INSERT INTO event_listeners (session, wake) VALUES (?, ?)", (session, wake))
    newest = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    assert cur.lastrowid is not None
    return cur.lastrowid, int(newest[0]) if newest else 0


def _unregister(conn: sqlite3.Connection, ident: int) -> None:
    conn.execute("DELETE FROM event_listeners WHERE id = ?", (ident,))
    if conn.execute(_LIVE + " LIMIT 1").fetchone() is None:
        conn.execute("DELETE FROM events")  # the last listener left: keep nothing


def _read(conn: sqlite3.Connection, after: int) -> list[tuple[int, str, bytes]]:
    return [(int(i), str(k), bytes(b)) for i, k, b in conn.execute(
        "SELECT id, key, body FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, READ_BATCH))]


class SQLiteEventSubscription(EventSubscription):
    """A listener row and the task that reads the ring for it."""

    def __init__(self, broker: SQLiteBroker, wants: Callable[[str], bool], handler: EventHandler,
                 wake: WakeSocket | None, ident: int, cursor: int) -> None:
        self._broker = broker
        self._wants = wants
        self._handler = handler
        self._wake = wake
        self._ident = ident
        self._cursor = cursor
        self._poke = asyncio.Event()
        self._cancelled = False
        if wake is not None:
            wake.listen(self._poke.set)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        db = self._broker.db
        try:
            while not self._cancelled:
                self._poke.clear()
                rows = await db.run(partial(_read, after=self._cursor))
                if rows and rows[0][0] > self._cursor + 1:
                    self.missed += rows[0][0] - self._cursor - 1  # pruned before this reader got to them
                for ident, key, body in rows:
                    self._cursor = ident
                    if self._wants(key):
                        try:
                            self._handler(key, body)
                        except Exception:
                            log.exception("event subscriber %r failed on a %s batch", self._handler, key)
                if len(rows) == READ_BATCH:
                    continue
                try:
                    await asyncio.wait_for(self._poke.wait(), FALLBACK)
                except asyncio.TimeoutError:
                    pass
        except BrokerError as exc:
            if not self._cancelled:
                self._broker.lose(exc)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._wake is not None:
            self._wake.close()
        self._broker.subscriptions.discard(self)
        if self._broker.connected:
            try:
                await self._broker.db.write(partial(_unregister, ident=self._ident))
            except BrokerError:
                pass  # the row names this session: it goes when the session does


async def subscribe(broker: SQLiteBroker, patterns: Sequence[str], handler: EventHandler) -> SQLiteEventSubscription:
    wants = matcher(patterns)
    wake = WakeSocket.create()
    try:
        ident, cursor = await broker.db.write(partial(_register, session=broker.session,
                                                      wake=wake.address if wake else None))
    except BaseException:
        if wake is not None:
            wake.close()
        raise
    subscription = SQLiteEventSubscription(broker, wants, handler, wake, ident, cursor)
    broker.subscriptions.add(subscription)
    return subscription
