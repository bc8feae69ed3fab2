"""Test-side tools: a plain pika client (independent of fairq's own client) and broker-side counts."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pika

from tests.support.rabbit_counts import rabbitmqctl, unacked
from tests.support.workers import TASKS, Journal, WorkerProcess, run_cli, wait_for, worker_process

__all__ = ["TASKS", "Amqp", "Journal", "WorkerProcess", "rabbitmqctl", "run_cli", "unacked", "unique", "wait_for",
           "worker_process"]


def unique(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


class Amqp:
    """A blocking pika connection for arranging and inspecting queues from the test side."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def _fresh(self) -> Any:
        if self.channel.is_closed:
            self.channel = self.connection.channel()
        return self.channel

    def exists(self, queue: str) -> bool:
        try:
            self._fresh().queue_declare(queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False

    def ready(self, queue: str) -> int:
        return self._fresh().queue_declare(queue, passive=True).method.message_count

    def consumers(self, queue: str) -> int:
        return self._fresh().queue_declare(queue, passive=True).method.consumer_count

    def delete(self, *queues: str) -> None:
        for queue in queues:
            self._fresh().queue_delete(queue)

    def publish(self, queue: str, body: bytes, headers: dict[str, Any] | None = None,
                content_type: str | None = None) -> None:
        self._fresh().basic_publish("", queue, body, pika.BasicProperties(
            delivery_mode=2, headers=headers, content_type=content_type, message_id=uuid.uuid4().hex))

    def publish_task(self, queue: str, task: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
                     headers: dict[str, Any] | None = None) -> None:
        body = json.dumps({"task": task, "args": args or [], "kwargs": kwargs or {}}).encode()
        self.publish(queue, body, {"fairq-protocol": 1, "fairq-task": task, **(headers or {})}, "application/json")

    def drain(self, queue: str) -> list[tuple[Any, bytes]]:
        """Take every ready message of ``queue`` (acked): [(properties, body)]."""
        out = []
        while True:
            method, props, body = self._fresh().basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))
