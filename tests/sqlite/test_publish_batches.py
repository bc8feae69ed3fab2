"""publish_nowait on SQLite: publishes started together share transactions, each keeps its outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fairq.broker import QueueSpec
from fairq.broker.sqlite import SQLiteBroker
from fairq.broker.sqlite.batch import MAX_BATCH
from fairq.errors import QueueFull
from fairq.message import Envelope


def test_many_publishes_share_few_transactions_and_keep_their_own_outcomes(tmp_path: Path) -> None:
    async def main() -> None:
        broker = SQLiteBroker(f"sqlite://{tmp_path}/fairq.db")
        await broker.connect()
        await broker.declare(QueueSpec("q"))
        await broker.declare(QueueSpec("small", max_length=3))
        writes = 0
        real_write = broker.db.write

        async def counting(fn: Any) -> Any:
            nonlocal writes
            writes += 1
            return await real_write(fn)

        broker.db.write = counting  # type: ignore[method-assign]
        reports: dict[int, BaseException | None] = {}

        def done(token: int, error: BaseException | None) -> None:
            assert token not in reports  # once per message
            reports[token] = error

        n = 2 * MAX_BATCH + 10
        futures = [broker.publish_nowait("q", Envelope(str(i).encode()), 0.0, done, i) for i in range(n)]
        futures += [broker.publish_nowait("small", Envelope(b"s"), 0.0, done, n + i) for i in range(5)]
        cancelled = broker.publish_nowait("q", Envelope(b"never"), 0.0, done, -1)
        cancelled.cancel()
        await asyncio.wait(futures)
        assert writes <= n // MAX_BATCH + 2  # not one transaction per message
        assert all(reports[i] is None for i in range(n + 3))
        assert [type(reports[n + i]) for i in (3, 4)] == [QueueFull, QueueFull]
        assert isinstance(reports[-1], asyncio.CancelledError)
        broker.db.write = real_write  # type: ignore[method-assign]
        stats = await broker.stats("q")
        assert stats is not None and stats.ready == n  # the cancelled one was never written
        await broker.close()

    asyncio.run(main())
