"""The SQLite broker's event channel: a capped ring in the file, nothing kept while nobody listens,
and the schema migration that added it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from first_schema import FIRST_SCHEMA

from fairq.broker.sqlite import SQLiteBroker
from fairq.broker.sqlite import events as sqlite_events
from fairq.broker.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION


def rows(path: Path, sql: str = "SELECT count(*) FROM events") -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(path: Path, scenario: Callable[[SQLiteBroker], Awaitable[None]]) -> None:
    async def main() -> None:
        broker = SQLiteBroker(f"sqlite://{path}")
        await broker.connect()
        try:
            await scenario(broker)
        finally:
            await broker.close()

    asyncio.run(main())


def test_nothing_is_stored_while_nobody_listens(tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"

    async def scenario(broker: SQLiteBroker) -> None:
        for i in range(5):
            assert broker.publish_event("task.started", b"{}")
        await broker._events.close()  # written (or not) by now

    run(path, scenario)
    assert rows(path) == 0


def test_a_listener_gets_what_is_published_after_it_subscribed_and_the_last_to_leave_empties_the_ring(
        tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"
    got: list[tuple[str, bytes]] = []

    async def scenario(broker: SQLiteBroker) -> None:
        listener = SQLiteBroker(f"sqlite://{path}")
        await listener.connect()
        try:
            subscription = await listener.subscribe_events(["task.*"], lambda key, body: got.append((key, body)))
            assert broker.publish_event("task.started", b"1")
            assert broker.publish_event("worker.heartbeat", b"2")  # not for this listener
            assert broker.publish_event("task.succeeded", b"3")
            await until(lambda: len(got) == 2, "both task batches")
            assert got == [("task.started", b"1"), ("task.succeeded", b"3")]
            assert rows(path) == 3
            await subscription.cancel()
            assert rows(path) == 0 and rows(path, "SELECT count(*) FROM event_listeners") == 0
        finally:
            await listener.close()

    run(path, scenario)


def test_the_ring_keeps_the_newest_batches_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_events, "RING", 10)
    path = tmp_path / "fairq.db"
    got: list[bytes] = []

    async def scenario(broker: SQLiteBroker) -> None:
        listener = SQLiteBroker(f"sqlite://{path}")
        await listener.connect()
        try:
            await listener.subscribe_events(["#"], lambda key, body: got.append(body))
            for i in range(60):
                assert broker.publish_event("task.started", str(i).encode())
                await asyncio.sleep(0)  # let the writer take them in several transactions
                while len(broker._events._pending) >= sqlite_events.MAX_PENDING // 2:
                    await asyncio.sleep(0.01)
            await until(lambda: got and got[-1] == b"59", "the newest batch")
            assert rows(path) <= 10
            assert [int(b) for b in got] == sorted(int(b) for b in got)  # in order, whatever was skipped
        finally:
            await listener.close()

    run(path, scenario)


def test_a_dead_listeners_row_goes_with_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"

    async def scenario(broker: SQLiteBroker) -> None:
        with sqlite3.connect(path) as conn:  # a listener whose session is gone (its process was killed)
            conn.execute("INSERT INTO event_listeners (session, wake) VALUES (999999, NULL)")
            conn.execute("INSERT INTO events (key, body, at) VALUES ('task.started', x'00', 0)")
        assert broker.publish_event("task.started", b"{}")
        await broker._events.close()

    run(path, scenario)
    assert rows(path, "SELECT count(*) FROM event_listeners") == 0
    assert rows(path) == 0


def test_a_version_1_file_gains_the_event_tables_and_keeps_its_queues(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what a fairq before events created
        conn.executescript(FIRST_SCHEMA)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO queues (name, kind) VALUES ('kept', 'quorum')")
    assert "events" not in {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}

    async def scenario(broker: SQLiteBroker) -> None:
        assert await broker.list_queues() == ["kept"]

    run(path, scenario)
    assert SCHEMA_VERSION == 4 and rows(path, "PRAGMA user_version") == 4
    assert rows(path) == 0 and rows(path, "SELECT count(*) FROM event_listeners") == 0
