"""Proof that tests/support/rabbit_node.py gives fault tests a usable private broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pika
import pika.exceptions
import pytest

from tests.support.rabbit_node import PrivateRabbitNode, wait_until

pytestmark = pytest.mark.faults

QUEUE = "fairq.test.private-node"


def _connect(node: PrivateRabbitNode) -> pika.BlockingConnection:
    params = pika.URLParameters(node.url)
    params.connection_attempts = 1
    params.heartbeat = 0  # nothing here should depend on heartbeats
    return pika.BlockingConnection(params)


def _publish_persistent(node: PrivateRabbitNode, body: bytes) -> None:
    """Declare the durable quorum queue and publish ``body`` with confirms."""
    conn = _connect(node)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        # with confirms on, this raises on nack / unroutable (mandatory)
        ch.basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        conn.close()


def _get_one(node: PrivateRabbitNode, timeout: float = 20.0) -> tuple[pika.spec.Basic.GetOk, bytes]:
    """basic_get one message, polling: right after a (re)start the quorum
    queue's Raft leader may still be recovering."""
    conn = _connect(node)
    try:
        ch = conn.channel()

        def get() -> tuple[pika.spec.Basic.GetOk, bytes] | None:
            method, _props, body = ch.basic_get(QUEUE, auto_ack=True)
            return (method, body) if method is not None else None

        return wait_until(get, timeout, interval=0.1, message=f"a message in {QUEUE}")
    finally:
        conn.close()


def test_restart_keeps_durable_quorum_queue_and_persistent_message(private_rabbit: PrivateRabbitNode) -> None:
    node = private_rabbit
    _publish_persistent(node, b"survives-restart")
    beam_before = node.os_pid

    node.restart()

    assert node.running and node.os_pid != beam_before
    assert node.queue_info(QUEUE, "type", "durable") == {"name": QUEUE, "type": "quorum", "durable": True}
    _method, body = _get_one(node)
    assert body == b"survives-restart"


def test_kill_then_start_recovers_confirmed_message(private_rabbit: PrivateRabbitNode) -> None:
    node = private_rabbit
    _publish_persistent(node, b"survives-crash")
    # Without this, a SIGKILL within 500 ms of declaring the quorum queue
    # loses its Ra registration on 3.10.8 (see PrivateRabbitNode.kill).
    node.sync_quorum_metadata()
    beam = node.os_pid
    assert beam is not None

    node.kill()

    assert not node.running and not Path(f"/proc/{beam}").exists()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _connect(node)
    node.start()
    _method, body = _get_one(node)
    assert body == b"survives-crash"


def test_close_all_connections_closes_pika_connection(private_rabbit: PrivateRabbitNode) -> None:
    node = private_rabbit
    _publish_persistent(node, b"held")
    conn = _connect(node)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume(QUEUE, lambda *_: None, auto_ack=False)  # hold the delivery unacked

    # Broker-side view, as fault tests will read it.
    def unacked_on_channel() -> bool:
        conn.process_data_events(time_limit=0)
        rows = node.list_channels("number", "consumer_count", "messages_unacknowledged")
        return rows == [{"number": ch.channel_number, "consumer_count": 1, "messages_unacknowledged": 1}]

    wait_until(unacked_on_channel, 20, interval=0.2, message="1 unacked delivery on the channel")
    wait_until(
        lambda: node.queue_info(QUEUE, "messages_unacknowledged", "consumers")
        == {"name": QUEUE, "messages_unacknowledged": 1, "consumers": 1},
        20,
        interval=0.2,
        message="queue to report 1 unacked message",
    )

    node.close_all_connections("fault test says bye")

    def closed_by_broker() -> pika.exceptions.ConnectionClosedByBroker | None:
        try:
            conn.process_data_events(time_limit=0.1)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            return exc
        return None

    exc = wait_until(closed_by_broker, 15, interval=0, message="the broker to close the connection")
    assert exc.reply_code == 320  # CONNECTION_FORCED
    assert "fault test says bye" in exc.reply_text
    assert conn.is_closed
    # The unacked delivery went back to the queue.
    wait_until(
        lambda: node.queue_info(QUEUE, "messages_ready", "messages_unacknowledged")
        == {"name": QUEUE, "messages_ready": 1, "messages_unacknowledged": 0},
        20,
        interval=0.2,
        message="the message to be requeued",
    )


def _non_empty(delivery: tuple) -> tuple | None:
    """consume(inactivity_timeout=...) yields (None, None, None) when idle."""
    return delivery if delivery[0] is not None else None


CONSUMER_TIMEOUT_MS = 2000
TICK_MS = 500


def test_consumer_timeout_closes_channel_with_406(make_private_rabbit: Callable[..., PrivateRabbitNode]) -> None:
    node = make_private_rabbit(
        config={"consumer_timeout": str(CONSUMER_TIMEOUT_MS)},
        # consumer_timeout is only checked on the channel's tick (default 60 s)
        advanced_config=f"[{{rabbit, [{{channel_tick_interval, {TICK_MS}}}]}}].",
    )
    assert node.app_env("consumer_timeout") == f"{{ok,{CONSUMER_TIMEOUT_MS}}}"
    assert node.app_env("channel_tick_interval") == f"{{ok,{TICK_MS}}}"
    _publish_persistent(node, b"never-acked")

    conn = _connect(node)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    deliveries = ch.consume(QUEUE, auto_ack=False, inactivity_timeout=0.05)
    method, _props, body = wait_until(lambda: _non_empty(next(deliveries)), 10, interval=0, message="the delivery")
    delivered_at = time.monotonic()
    assert body == b"never-acked" and not method.redelivered

    def channel_closed() -> pika.exceptions.ChannelClosedByBroker | None:
        try:
            extra = next(deliveries)
        except pika.exceptions.ChannelClosedByBroker as exc:
            return exc
        assert extra == (None, None, None), "prefetch 1: nothing else may arrive"
        return None

    bound = CONSUMER_TIMEOUT_MS / 1000 + TICK_MS / 1000 + 5.0
    exc = wait_until(channel_closed, bound, interval=0, message="consumer_timeout to close the channel")
    elapsed = time.monotonic() - delivered_at

    assert exc.reply_code == 406  # PRECONDITION_FAILED
    assert "timed out" in exc.reply_text, exc.reply_text
    assert CONSUMER_TIMEOUT_MS / 1000 - 0.2 <= elapsed < bound, elapsed
    assert ch.is_closed and conn.is_open  # only the channel is closed
    # the timed-out delivery is requeued and redelivered
    method, body = _get_one(node)
    assert body == b"never-acked" and method.redelivered
    conn.close()
