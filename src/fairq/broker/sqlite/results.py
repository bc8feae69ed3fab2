"""Results in the SQLite file: a row per task message until its TTL, readable by any later caller.

A worker's result is an ``INSERT`` (the first one stays: a task run twice after a crash keeps
its first result) that also prunes expired rows, so the table never grows past what one TTL
of results holds. Callers poll for the ids they wait on, backing off from a few
milliseconds: one query for every id waited on at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from ..base import ResultInbox

if TYPE_CHECKING:
    from .broker import SQLiteBroker

#: The address of every SQLite inbox: the results are the file's, not one caller's.
ADDRESS = "sqlite"
#: Polling starts this often and backs off to POLL_MAX.
POLL_MIN = 0.002
POLL_MAX = 0.05
#: Ids asked for in one query (SQLite's default limit of bound parameters is far above).
CHUNK = 500


def put(conn: sqlite3.Connection, message_id: str, body: bytes, ttl: float) -> None:
    now = time.time()
    conn.execute("DELETE FROM results WHERE expires < ?", (now,))
    conn.execute("INSERT OR IGNORE INTO results (message_id, body, expires) VALUES (?, ?, ?)",
                 (message_id, body, now + ttl))


def found(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, bytes]:
    now = time.time()
    out: dict[str, bytes] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start:start + CHUNK])
        marks = ",".join("?" * len(chunk))
        for message_id, body in conn.execute(
                f"SELECT message_id, body FROM results WHERE message_id IN ({marks}) AND expires >= ?", (*chunk, now)):
            out[message_id] = bytes(body)
    return out


class SQLiteInbox(ResultInbox):
    address = ADDRESS

    def __init__(self, broker: SQLiteBroker) -> None:
        self._broker = broker

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = POLL_MIN
        while True:
            here = await self._broker.db.run(partial(found, ids=ids))
            left = None if deadline is None else deadline - loop.time()
            if here or left is not None and left <= 0:
                return [i for i in ids if i in here]
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(POLL_MAX, pause * 2)

    async def get(self, message_id: str) -> bytes | None:
        return (await self._broker.db.run(partial(found, ids=[message_id]))).get(message_id)
