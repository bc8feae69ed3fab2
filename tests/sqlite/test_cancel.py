"""Cancelling a consumer while its claim is on the database thread must not strand the claimed rows.

The adaptive window replaces consumers (cancel + consume) hundreds of times in a drain; a claim
committed after its consumer stopped listening left messages held by a live session that
nobody would ever deliver, and a drain stalled until the worker exited.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fairq.broker import Delivery, QueueSpec
from fairq.broker.sqlite import SQLiteBroker, broker as sqlite_broker
from fairq.message import Envelope


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_a_claim_in_flight_when_its_consumer_is_cancelled_stays_claimable(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    entered, go = threading.Event(), threading.Event()
    real_claim = sqlite_broker.queues.claim

    def gated_claim(conn: Any, **kwargs: Any) -> Any:
        entered.set()
        go.wait(10)
        return real_claim(conn, **kwargs)

    async def main() -> list[str]:
        broker = SQLiteBroker(f"sqlite://{tmp_path / 'fairq.db'}")
        await broker.connect()
        try:
            await broker.declare(QueueSpec("q"))
            for i in range(3):
                await broker.publish("q", Envelope(body=b"x", message_id=f"m{i}"))
            got: list[str] = []

            async def handler(d: Delivery) -> None:
                got.append(d.envelope.message_id or "")
                await d.ack()

            monkeypatch.setattr(sqlite_broker.queues, "claim", gated_claim)
            first = await broker.consume("q", 10, handler)
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
            cancelling = asyncio.ensure_future(first.cancel())
            await until(lambda: first._cancelled)  # type: ignore[attr-defined]
            go.set()  # the claim commits after the cancel began
            await cancelling
            monkeypatch.setattr(sqlite_broker.queues, "claim", real_claim)
            second = await broker.consume("q", 10, handler)
            await until(lambda: len(got) >= 3)
            await second.cancel()
            return got
        finally:
            go.set()
            await broker.close()

    assert sorted(asyncio.run(main())) == ["m0", "m1", "m2"]
