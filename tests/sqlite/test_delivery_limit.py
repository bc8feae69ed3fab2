"""The broker-side delivery limit of the embedded backends (RabbitMQ's quorum queues do the same
with their own reason): a message lost more than ``delivery_limit`` times goes to QUEUE.dlq."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from fairq.broker import QueueSpec, connect_url
from fairq.message import Envelope


@pytest.mark.parametrize("scheme", ["sqlite", "memory"])
def test_a_message_lost_more_than_the_limit_is_dead_lettered_with_the_reason(scheme: str, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/fairq.db" if scheme == "sqlite" else f"memory://limit-{uuid.uuid4().hex}"

    async def main() -> None:
        watcher = connect_url(url)
        await watcher.connect()
        await watcher.declare(QueueSpec("q", delivery_limit=2))
        await watcher.publish("q", Envelope(b"crasher", headers={"fairq-protocol": 1}, message_id="c1"))
        for count in range(3):  # handed out with delivery_count 0, 1, 2; each time its holder dies
            doomed = connect_url(url)
            await doomed.connect()
            got = await doomed.get("q")
            assert got is not None and got.delivery_count == count
            await doomed.close()
        assert await watcher.get("q") is None  # lost 3 times > 2: not handed out again
        dead = await watcher.get("q.dlq")
        assert dead is not None and dead.envelope.message_id == "c1"
        assert dead.envelope.headers["fairq-dead-reason"] == "delivery limit"
        assert dead.envelope.headers["fairq-queue"] == "q"
        await watcher.close()

    asyncio.run(main())
