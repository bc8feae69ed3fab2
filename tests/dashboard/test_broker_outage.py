"""The broker going away: the page's stream says so (the banner's data) and recovers by itself.

On a private RabbitMQ node of the module's own (tests/support/rabbit_node.py), stopped and started again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import Harness
from tests.support.dashboard import StreamReader, dashboard
from tests.support.rabbit_node import PrivateRabbitNode, rabbitmq_available
from tests.support.workers import Journal


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbitNode]:
    if not rabbitmq_available():
        message = "RabbitMQ server scripts not installed (/usr/lib/rabbitmq/bin): sudo apt-get install -y rabbitmq-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    private = PrivateRabbitNode()
    try:
        private.start()
        yield private
    finally:
        private.cleanup()


def test_a_lost_broker_is_reported_and_the_timeline_carries_on_when_it_is_back(node: PrivateRabbitNode,
                                                                                tmp_path: Path) -> None:
    harness = Harness("amqp", node.url)
    queue, name = f"outage.{uuid.uuid4().hex[:8]}", f"outage-{uuid.uuid4().hex[:6]}"
    journal = Journal(tmp_path / "journal.txt")
    try:
        with dashboard(node.url) as server, StreamReader(server.url) as reader:
            reader.wait(lambda r: r.of("status") and r.of("status")[-1]["connected"], "connected at first")
            node.stop()
            down = reader.wait(lambda r: [s for s in r.of("status") if not s["connected"]], "the broker reported lost")
            assert down[-1]["problem"] and "guest:guest" not in down[-1]["problem"]
            node.start()
            reader.wait(lambda r: r.of("status")[-1]["connected"], "connected again, by itself", timeout=60)
            with harness.workers(queue, journal, name=name):
                message_id = harness.send(queue, "record", "after", 0.2)
                reader.wait(lambda r: any(row[6] == message_id and row[5] == "ok" for row in r.bars().values()),
                            "a task run after the outage drawn as a bar")
    finally:
        harness.close()
