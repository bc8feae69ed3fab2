"""Sessions and leases: who holds a claimed message, and when it is free again.

Each broker connection is a row in ``sessions`` (pid, host, heartbeat). Claimed messages
name their session, not a per-message deadline, so a task longer than the lease keeps its
claim for as long as its process renews the session. The heartbeat thread renews it every
:data:`HEARTBEAT` seconds and, in the same transaction, reaps sessions that are gone: a
heartbeat older than :data:`LEASE`, or a pid on this host that no longer runs (``kill -9``
is noticed at the next heartbeat of any process, without waiting for the lease). A reaped
session's messages become claimable with ``redelivered`` set and ``delivery_count`` + 1.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ...errors import ConfigurationError, ConnectionFailed
from .schema import open_database
from .wake import consumers_of, notify

#: Seconds between renewals of a session's heartbeat (and reaps of dead sessions).
HEARTBEAT = 0.5
#: A session whose heartbeat is older than this is dead: three renewals missed.
LEASE = 1.5
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs on this host (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def open_session(conn: sqlite3.Connection) -> int:
    cur = conn.execute("INSERT INTO sessions (pid, host, heartbeat) VALUES (?, ?, ?)",
                       (os.getpid(), HOST, time.time()))
    assert cur.lastrowid is not None
    return cur.lastrowid


def end_session(conn: sqlite3.Connection, session: int) -> set[str]:
    """Release every claim of ``session`` (they count as lost deliveries) and forget it; the queues freed."""
    queues = {row[0] for row in conn.execute("SELECT DISTINCT queue FROM messages WHERE session = ?", (session,))}
    conn.execute("UPDATE messages SET session = NULL, redelivered = 1, delivery_count = delivery_count + 1 "
                 "WHERE session = ?", (session,))
    # Dealt to its consumers and not yet claimed: anyone's again, not a lost delivery.
    mine = "offered_to IN (SELECT id FROM consumers WHERE session = ?)"
    queues |= {row[0] for row in conn.execute(f"SELECT DISTINCT queue FROM messages WHERE {mine}", (session,))}
    conn.execute(f"UPDATE messages SET offered_to = NULL WHERE {mine}", (session,))
    conn.execute("DELETE FROM consumers WHERE session = ?", (session,))
    conn.execute("DELETE FROM sessions WHERE id = ?", (session,))
    return queues


def renew_and_reap(conn: sqlite3.Connection, session: int) -> tuple[bool, set[str]]:
    """Renew ``session``; end every dead session. (False if ``session`` itself was reaped, queues freed)."""
    now = time.time()
    alive = conn.execute("UPDATE sessions SET heartbeat = ? WHERE id = ?", (now, session)).rowcount == 1
    freed: set[str] = set()
    for sid, pid, host, beat in conn.execute("SELECT id, pid, host, heartbeat FROM sessions").fetchall():
        if sid != session and (beat < now - LEASE or (host == HOST and not pid_alive(pid))):
            freed |= end_session(conn, sid)
    return alive, freed


class Heartbeat(threading.Thread):
    """Renews one session from its own thread and its own connection.

    Neither a busy event loop nor a long queue of statements on the broker's database thread
    (a thousand acks after a drain) can delay a renewal: only the file's write lock is shared.
    """

    def __init__(self, path: Path, synchronous: str, session: int, lost: Callable[[BaseException], None]) -> None:
        super().__init__(name=f"fairq-sqlite-heartbeat-{session}", daemon=True)
        self._path = path
        self._synchronous = synchronous
        self._session = session
        self._lost = lost
        self._stop = threading.Event()

    def _beat(self, conn: sqlite3.Connection) -> tuple[bool, list[str]]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            alive, freed = renew_and_reap(conn, self._session)
            woken = consumers_of(conn, freed)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return alive, woken

    def run(self) -> None:
        try:
            conn = open_database(self._path, self._synchronous)
        except ConfigurationError as exc:
            self._lost(ConnectionFailed(str(exc)))
            return
        try:
            self._loop(conn)
        finally:
            conn.close()

    def _loop(self, conn: sqlite3.Connection) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(HEARTBEAT):
            try:
                alive, woken = self._beat(conn)
            except sqlite3.Error as exc:
                if time.monotonic() - renewed > LEASE:
                    self._lost(ConnectionFailed(f"sqlite broker: cannot renew the session's lease: {exc}"))
                    return
                continue
            if self._stop.is_set():
                return
            if not alive:
                self._lost(ConnectionFailed("sqlite broker: the session's lease expired and its claims were "
                                            "given to others (was the process stopped?)"))
                return
            renewed = time.monotonic()
            notify(woken)

    def stop(self) -> None:
        self._stop.set()
