"""The SQLite broker's tables, its schema version, and the checks made when a file is opened.

A fairq database says so twice: ``PRAGMA application_id`` holds :data:`APPLICATION_ID` and
``PRAGMA user_version`` the schema version. A file with another application id (or tables
but no id) is not ours and is refused rather than written to; a newer version is refused so an
old fairq never misreads a newer layout. An older version is brought up to date when it is
opened (:data:`MIGRATIONS`, in the same transaction that checks it): version 2 added the
round-robin columns of uncapped consumers, version 3 the event tables (events.py) and version 4 the
results and the periodic schedules' ticks (results.py, ticks.py), so a file a newer
fairq has opened is refused by older ones.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ...errors import ConfigurationError

#: "fqdb": marks a SQLite file as a fairq broker database.
APPLICATION_ID = 0x66716462
SCHEMA_VERSION = 4
#: Waiting this long for another process's write lock before a statement fails.
BUSY_TIMEOUT_MS = 10_000
SYNCHRONOUS = ("full", "normal", "extra", "off")

#: The event channel's tables (events.py), added in schema version 2.
EVENTS_DDL = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- publish order, never reused: a gap is a pruned batch
    key TEXT NOT NULL,                         -- routing key, e.g. task.started
    body BLOB NOT NULL,                        -- one batch (docs/events.md)
    at REAL NOT NULL                           -- wall-clock seconds when stored
);
CREATE TABLE event_listeners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session INTEGER NOT NULL,                  -- the listener's broker session (sessions.id)
    wake TEXT                                  -- its wake-up socket address
);
"""
#: Task results kept until their TTL (results.py) and the last tick each periodic schedule fired (ticks.py),
#: added in schema version 4.
RESULTS_DDL = """
CREATE TABLE results (
    message_id TEXT PRIMARY KEY,               -- the task message's id
    body BLOB NOT NULL,                        -- docs/results.md
    expires REAL NOT NULL                      -- wall-clock seconds
);
CREATE INDEX results_expires ON results (expires);
CREATE TABLE ticks (
    schedule TEXT PRIMARY KEY,                 -- a periodic task's schedule key
    tick REAL NOT NULL,                        -- wall-clock seconds of the last tick sent
    sent REAL NOT NULL                         -- when it was sent
);
CREATE TABLE leaders (
    role TEXT PRIMARY KEY,                     -- what is led: 'scheduler'
    session INTEGER NOT NULL,                  -- the leading broker session (sessions.id)
    until REAL NOT NULL                        -- wall-clock seconds its lease runs to
);
"""
DDL = """
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    max_length INTEGER,
    delivery_limit INTEGER,
    turn INTEGER NOT NULL DEFAULT 0            -- the next of its uncapped consumers to be dealt a message
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- publish order: a requeued message keeps its place
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,                     -- JSON object
    message_id TEXT,
    content_type TEXT,
    timestamp TEXT,                            -- ISO 8601 with offset
    persistent INTEGER NOT NULL,
    ready_at REAL NOT NULL,                    -- wall-clock seconds, a delay sets it in the future
    session INTEGER,                           -- the session holding the claim, NULL: not claimed
    delivery_count INTEGER NOT NULL DEFAULT 0, -- claims lost without a settlement (process died, lease expired)
    redelivered INTEGER NOT NULL DEFAULT 0,
    offered_to INTEGER                         -- the uncapped consumer it was dealt to, NULL: anyone's
);
CREATE INDEX messages_free ON messages (queue, id) WHERE session IS NULL;
CREATE INDEX messages_due ON messages (queue, ready_at) WHERE session IS NULL;
CREATE INDEX messages_claimed ON messages (session) WHERE session IS NOT NULL;
CREATE INDEX messages_offered ON messages (offered_to) WHERE offered_to IS NOT NULL;
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat REAL NOT NULL,                   -- wall-clock seconds, renewed every HEARTBEAT
    wake TEXT                                  -- the session's wake-up socket address, if it consumes
);
CREATE TABLE consumers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session INTEGER NOT NULL,
    queue TEXT NOT NULL,
    prefetch INTEGER NOT NULL DEFAULT 1        -- 0: no cap (dealt messages in turn)
);
CREATE INDEX consumers_queue ON consumers (queue);
""" + EVENTS_DDL + RESULTS_DDL
#: What brings a file of version N to N + 1, run statement by statement in the transaction that opens it
#: (additive only: nothing a running older fairq reads changes). 2: the round-robin dealing of uncapped
#: consumers (queues.py); 3: the event tables (events.py); 4: results and ticks.
MIGRATIONS = {
    1: """
ALTER TABLE queues ADD COLUMN turn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN offered_to INTEGER;
ALTER TABLE consumers ADD COLUMN prefetch INTEGER NOT NULL DEFAULT 1;
CREATE INDEX messages_offered ON messages (offered_to) WHERE offered_to IS NOT NULL
""",
    2: EVENTS_DDL,
    3: RESULTS_DDL,
}


def open_database(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open (creating if new) the fairq database at ``path``; ConfigurationError naming it if unusable."""
    directory = path.parent
    if not directory.is_dir():
        raise ConfigurationError(f"sqlite broker: directory {directory} of {path} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(f"sqlite broker: directory {directory} of {path} is not writable "
                                 "(the database needs its -wal and -shm files beside it)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigurationError(f"sqlite broker: {path} is not readable and writable")
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"sqlite broker: cannot open {path}: {exc}") from None
    try:
        _check_and_create(conn, path)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ConfigurationError(f"sqlite broker: {path} cannot use WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigurationError(f"sqlite broker: {path} is not a fairq database ({exc})") from None
    except ConfigurationError:
        conn.close()
        raise
    return conn


def _check_and_create(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse foreign or newer files; create the tables in an empty one (under the write lock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app == 0 and tables == 0:
            _run(conn, DDL)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app != APPLICATION_ID:
            raise ConfigurationError(f"sqlite broker: {path} is not a fairq database (another application's file)")
        elif version > SCHEMA_VERSION:
            raise ConfigurationError(f"sqlite broker: {path} has schema version {version}, newer than this "
                                     f"fairq's {SCHEMA_VERSION}: upgrade fairq")
        else:
            for step in range(version, SCHEMA_VERSION):
                _run(conn, MIGRATIONS[step])
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript would commit the transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
