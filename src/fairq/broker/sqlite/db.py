"""The database thread: every statement of one broker runs on it, so the event loop never blocks.

One thread and one connection per :class:`Database` (a broker connection). Write transactions
start with ``BEGIN IMMEDIATE``: they take the file's write lock up front, so two processes
claiming at once serialise on the lock (waiting up to the busy timeout) instead of both reading
the same free message and one failing at commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ...errors import BrokerError, ConfigurationError
from .schema import open_database

T = TypeVar("T")


class Database:
    """A connection living on its own thread; :meth:`run` and :meth:`write` hop there and back."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairq-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open and check the file on the database thread; ConfigurationError naming the path."""
        await asyncio.wrap_future(self._executor.submit(self._open))

    def _open(self) -> None:
        self._conn = open_database(self.path, self._synchronous)

    def _call(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            raise BrokerError(f"sqlite broker: {self.path} is closed")
        try:
            if not write:
                return fn(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise BrokerError(f"sqlite broker: {self.path}: {exc}") from None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread (no transaction of its own)."""
        return await asyncio.wrap_future(self._executor.submit(self._call, fn, False))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` on the database thread."""
        return await asyncio.wrap_future(self._executor.submit(self._call, fn, True))

    async def close(self) -> None:
        def shut(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        try:
            await self.run(shut)
        except (BrokerError, ConfigurationError, RuntimeError):
            pass
        self._executor.shutdown(wait=False)
