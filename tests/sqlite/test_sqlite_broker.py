"""The SQLite backend's own promises: leases across real processes, claims that never overlap,
the envelope stored whole, and a one-line error for every unusable path."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fairq.broker import QueueSpec, connect_url
from fairq.broker.sqlite import SQLiteBroker, leases
from fairq.broker.sqlite.schema import SCHEMA_VERSION
from fairq.broker.sqlite.wake import FALLBACK
from fairq.config import broker_url
from fairq.errors import ConfigurationError
from fairq.message import Envelope

HOLDER = str(Path(__file__).with_name("holder.py"))


def url_of(path: Path) -> str:
    return f"sqlite://{path}"


async def fill(url: str, queue: str, n: int) -> SQLiteBroker:
    broker = SQLiteBroker(url)
    await broker.connect()
    await broker.declare(QueueSpec(queue))
    for i in range(n):
        await broker.publish(queue, Envelope(body=str(i).encode(), message_id=f"m{i:04d}"))
    return broker


def test_claims_of_a_killed_process_are_claimable_again_within_two_seconds(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")

    async def main() -> float:
        broker = await fill(url, "q", 3)
        child = subprocess.Popen([sys.executable, HOLDER, url, "q", "hold", "3"], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "held"
            assert await broker.get("q") is None  # the child holds all three
            os.kill(child.pid, signal.SIGKILL)
            killed = time.monotonic()
            child.wait()
            back = []
            while len(back) < 3 and time.monotonic() - killed < 5:
                got = await broker.get("q")
                if got is None:
                    await asyncio.sleep(0.01)
                    continue
                assert got.redelivered and got.delivery_count == 1
                back.append(got)
            elapsed = time.monotonic() - killed
            assert sorted(d.envelope.message_id or "" for d in back) == ["m0000", "m0001", "m0002"]
            return elapsed
        finally:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
            await broker.close()

    elapsed = asyncio.run(main())
    print(f"kill -9 -> claimable again: {elapsed:.3f} s")
    assert elapsed <= 2.0


def test_a_live_process_keeps_its_claim_past_the_lease(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")

    async def main() -> None:
        holder = await fill(url, "q", 1)
        held = await holder.get("q")
        assert held is not None
        other = SQLiteBroker(url)
        await other.connect()
        start = time.monotonic()
        while time.monotonic() - start < 3 * leases.LEASE:  # any redelivery would show here
            assert await other.get("q") is None
            await asyncio.sleep(0.05)
        await held.ack()
        await other.close()
        await holder.close()

    asyncio.run(main())


def test_two_processes_claiming_at_once_never_get_the_same_message(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")
    n = 300

    async def main() -> None:
        broker = await fill(url, "q", n)
        await broker.close()

    asyncio.run(main())
    children = [subprocess.Popen([sys.executable, HOLDER, url, "q", "drain", "1.5"], stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = [child.communicate(timeout=60)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    everything = outputs[0] + outputs[1]
    assert sorted(everything) == [f"m{i:04d}" for i in range(n)]  # each once: no duplicate, none lost
    assert outputs[0] and outputs[1]  # both took part


def test_the_envelope_round_trips_whole(tmp_path: Path) -> None:
    async def main() -> None:
        broker = await fill(url_of(tmp_path / "fairq.db"), "q", 0)
        stamp = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
        sent = Envelope(body=bytes(range(256)), headers={"a": 1, "nested": {"l": [1, "x", None]}, "f": 1.5},
                        message_id="id-1", content_type="application/octet-stream", timestamp=stamp, persistent=False)
        await broker.publish("q", sent)
        got = await broker.get("q")
        assert got is not None and got.envelope == sent
        await broker.close()

    asyncio.run(main())


def test_the_factory_and_config_accept_sqlite_urls(tmp_path: Path) -> None:
    url = url_of(tmp_path / "x.db") + "?synchronous=normal"
    assert broker_url(url) == url
    assert isinstance(connect_url(url), SQLiteBroker)
    with pytest.raises(ConfigurationError, match="needs a database path"):
        broker_url("sqlite://")
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteBroker(url_of(tmp_path / "x.db") + "?synchronous=sometimes")


def _connect_error(url: str) -> str:
    async def main() -> None:
        await SQLiteBroker(url).connect()

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_directory_is_one_line_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "fairq.db"
    assert str(path) in _connect_error(url_of(path)) and "does not exist" in _connect_error(url_of(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_one_line_naming_the_path(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert "not writable" in _connect_error(url_of(ro / "fairq.db"))


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite at all " * 100)
    message = _connect_error(url_of(path))
    assert str(path) in message and "not a fairq database" in message


def test_another_applications_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    message = _connect_error(url_of(path))
    assert str(path) in message and "not a fairq database" in message
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"

    async def create() -> None:
        await (await fill(url_of(path), "q", 0)).close()

    asyncio.run(create())
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    message = _connect_error(url_of(path))
    assert str(path) in message and "newer" in message


def test_closing_releases_claims_at_once_and_a_queue_survives_reopening(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")
    queue = f"q{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        broker = await fill(url, queue, 2)
        got = await broker.get(queue)
        assert got is not None
        await broker.close()
        again = SQLiteBroker(url)
        await again.connect()
        stats = await again.stats(queue)
        assert stats is not None and stats.ready == 2
        first = await again.get(queue)
        assert first is not None and first.envelope.message_id == "m0000" and first.redelivered
        await again.close()

    asyncio.run(main())


def test_every_publish_that_returned_survives_kill_9_of_the_producer(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")
    asyncio.run(_close(fill(url, "q", 0)))
    child = subprocess.Popen([sys.executable, HOLDER, url, "q", "publish", "100000"], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    confirmed = [child.stdout.readline().strip() for _ in range(300)]
    os.kill(child.pid, signal.SIGKILL)  # mid-stream: some publish is in flight
    child.wait()
    confirmed += child.stdout.read().split()
    child.stdout.close()

    async def stored() -> set[str]:
        broker = SQLiteBroker(url)
        await broker.connect()
        ids = set()
        while (got := await broker.get("q")) is not None:
            ids.add(got.envelope.message_id or "")
        await broker.close()
        return ids

    ids = asyncio.run(stored())
    assert set(confirmed) <= ids and len(confirmed) >= 300


async def _close(opening: Any) -> None:
    await (await opening).close()


def test_a_session_whose_lease_was_taken_reports_lost_and_its_deliveries_die(tmp_path: Path) -> None:
    path = tmp_path / "fairq.db"

    async def main() -> None:
        stalled = await fill(url_of(path), "q", 1)
        held = await stalled.get("q")
        assert held is not None and held.alive
        peer = SQLiteBroker(url_of(path))
        await peer.connect()
        # what another process's reaper does once the holder was stopped for longer than the lease
        with sqlite3.connect(path) as conn:
            assert leases.end_session(conn, stalled.session) == {"q"}
        cause = await asyncio.wait_for(stalled.wait_lost(), 5)
        assert "lease" in str(cause) and not held.alive
        again = await peer.get("q")
        assert again is not None and again.redelivered and again.delivery_count == 1
        await held.ack()  # too late: does nothing, the peer owns it now
        await again.ack()
        await peer.close()
        await stalled.close()

    asyncio.run(main())


def test_a_consumer_finds_work_without_a_wake_up(tmp_path: Path) -> None:
    """A lost wake-up costs at most the fallback timer: a message written behind fairq's back still arrives."""
    path = tmp_path / "fairq.db"

    async def main() -> None:
        broker = await fill(url_of(path), "q", 0)
        arrived = asyncio.Event()

        async def handler(d: Any) -> None:
            await d.ack()
            arrived.set()

        consumer = await broker.consume("q", 1, handler)
        with sqlite3.connect(path) as conn:  # no wake-up is sent by this insert
            conn.execute("INSERT INTO messages (queue, body, headers, persistent, ready_at) "
                         "VALUES ('q', x'00', '{}', 1, 0)")
        await asyncio.wait_for(arrived.wait(), FALLBACK + 2)
        await consumer.cancel()
        await broker.close()

    asyncio.run(main())


def test_a_stale_heartbeat_frees_claims_even_when_the_pid_cannot_be_checked(tmp_path: Path) -> None:
    """A session of another host (its pid means nothing here) is dead once its heartbeat is older than the lease."""
    path = tmp_path / "fairq.db"

    async def main() -> None:
        broker = await fill(url_of(path), "q", 1)
        with sqlite3.connect(path) as conn:
            sid = conn.execute("INSERT INTO sessions (pid, host, heartbeat) VALUES (1, 'elsewhere', ?)",
                               (time.time() - leases.LEASE - 0.1,)).lastrowid
            conn.execute("UPDATE messages SET session = ?", (sid,))
        got = None
        start = time.monotonic()
        while got is None and time.monotonic() - start < 5:
            got = await broker.get("q")
            await asyncio.sleep(0.02)
        assert got is not None and got.redelivered and got.delivery_count == 1
        await broker.close()

    asyncio.run(main())


def test_acks_not_yet_committed_are_committed_by_close(tmp_path: Path) -> None:
    url = url_of(tmp_path / "fairq.db")

    async def main() -> None:
        broker = await fill(url, "q", 50)
        for _ in range(50):
            got = await broker.get("q")
            assert got is not None
            await got.ack()  # returns before its batch commits
        await broker.close()  # must commit them, not hand them back
        again = SQLiteBroker(url)
        await again.connect()
        assert await again.get("q") is None
        await again.close()

    asyncio.run(main())
