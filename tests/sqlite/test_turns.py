"""Uncapped consumers (``--prefetch unlimited``) take turns, as RabbitMQ's round-robin hands out messages.

Without turns, whichever consumer claimed first took the whole backlog (up to 100 at once). Messages dealt
to a consumer wait for it, and are anyone's again when it goes; files of the first schema are upgraded.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from first_schema import FIRST_SCHEMA

from fairq.broker import Delivery, QueueSpec
from fairq.broker.sqlite import SQLiteBroker, leases, queues
from fairq.broker.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, open_database
from fairq.message import Envelope


def test_uncapped_consumers_of_a_queue_are_dealt_its_messages_in_turn(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'fairq.db'}"

    async def main() -> list[list[str]]:
        producer = SQLiteBroker(url)
        await producer.connect()
        await producer.declare(QueueSpec("q"))
        brokers = [SQLiteBroker(url) for _ in range(3)]
        got: list[list[str]] = [[] for _ in brokers]
        for broker, mine in zip(brokers, got):
            await broker.connect()

            async def hold(d: Delivery, mine: list[str] = mine) -> None:  # held, never acked
                mine.append(d.envelope.message_id or "")

            await broker.consume("q", 0, hold)
        for i in range(9):
            await producer.publish("q", Envelope(body=b"x", message_id=f"m{i}"))
        deadline = time.monotonic() + 10
        while sum(map(len, got)) < 9 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stats = await producer.stats("q")
        assert stats is not None and (stats.ready, stats.unacked) == (0, 9)
        dealt = [list(mine) for mine in got]  # closing gives them back to the consumers still open
        for broker in brokers:
            await broker.close()
        await producer.close()
        return dealt

    # consumers in the order they subscribed, each every third message, whoever looked first
    assert asyncio.run(main()) == [["m0", "m3", "m6"], ["m1", "m4", "m7"], ["m2", "m5", "m8"]]


def _file(tmp_path: Path) -> sqlite3.Connection:
    conn = open_database(tmp_path / "fairq.db", "normal")
    queues.declare(conn, QueueSpec("q"))
    return conn


def test_a_message_dealt_to_a_consumer_that_goes_is_anyones_again_and_not_counted_lost(tmp_path: Path) -> None:
    conn = _file(tmp_path)
    sessions = [leases.open_session(conn) for _ in range(3)]
    first, second, _ = (queues.add_consumer(conn, s, "q", None, prefetch=0) for s in sessions)
    assert first is not None and second is not None
    for i in range(4):
        queues.publish(conn, "q", Envelope(body=b"x", message_id=f"m{i}"), 0.0)
    claimed = queues.claim_in_turn(conn, "q", sessions[0], first, limit=100)
    assert claimed is not None
    assert [r.envelope.message_id for r in claimed.rows] == ["m0", "m3"]
    assert (claimed.more, claimed.following) == (False, None)  # nothing left for it: sleep until woken
    stats = queues.stats(conn, "q")
    assert stats is not None and (stats.ready, stats.unacked) == (0, 4)  # dealt ones are held, as pushed ones
    capped = queues.claim(conn, "q", sessions[2], limit=10)
    assert capped is not None and (capped.rows, capped.following) == ([], None)  # dealt: not for a plain claim
    queues.remove_consumer(conn, second)  # cancelled before it claimed m1
    assert leases.end_session(conn, sessions[2]) == {"q"}  # m2 was dealt to the third: its session ended
    again = queues.claim(conn, "q", sessions[1], limit=10)
    assert again is not None
    assert [(r.envelope.message_id, r.delivery_count, r.redelivered) for r in again.rows] == [
        ("m1", 0, False), ("m2", 0, False)]


def test_a_file_of_the_first_schema_is_upgraded_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"
    old = sqlite3.connect(path)
    old.executescript(FIRST_SCHEMA + """
        INSERT INTO queues VALUES ('q', 'quorum', NULL, NULL), ('q.dlq', 'quorum', NULL, NULL);
        INSERT INTO messages (queue, body, headers, message_id, persistent, ready_at)
            VALUES ('q', x'6f6c64', '{}', 'kept', 1, 0);
    """)
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    async def main() -> tuple[str | None, bytes]:
        broker = SQLiteBroker(f"sqlite://{path}")
        await broker.connect()
        got: list[Delivery] = []

        async def handler(d: Delivery) -> None:
            got.append(d)
            await d.ack()

        consumer = await broker.consume("q", 0, handler)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await consumer.cancel()
        await broker.close()
        return got[0].envelope.message_id, got[0].envelope.body

    assert asyncio.run(main()) == ("kept", b"old")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
