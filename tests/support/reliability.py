"""Recording fault-test outcomes, so RELIABILITY.md is written from real runs (scripts/reliability)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import pika

OUT_ENV = "FAIRQ_RELIABILITY_OUT"


@dataclass
class Outcome:
    scenario: str
    action: str
    sent: int
    completed: int
    lost: int
    duplicates: int = 0
    note: str = ""


def record(outcome: Outcome) -> None:
    """Append ``outcome`` as a JSON line to $FAIRQ_RELIABILITY_OUT (if set) and print it."""
    line = json.dumps(asdict(outcome))
    print(f"reliability: {line}")
    path = os.environ.get(OUT_ENV)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def counts(done_tags: list[str], sent_tags: list[str]) -> tuple[int, int, int]:
    """(completed distinct, lost, duplicate runs) of ``sent_tags`` given the done journal."""
    done = set(done_tags)
    completed = sum(1 for t in set(sent_tags) if t in done)
    return completed, len(set(sent_tags)) - completed, len(done_tags) - len(done)


class Inspector:
    """A plain pika connection to a private node, for live queue counts."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

    def ready(self, queue: str) -> int:
        if self.channel.is_closed:
            self.channel = self.connection.channel()
        try:
            return int(self.channel.queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return -1

    def consumers(self, queue: str) -> int:
        if self.channel.is_closed:
            self.channel = self.connection.channel()
        return int(self.channel.queue_declare(queue, passive=True).method.consumer_count)

    def publish(self, queue: str, body: bytes, **props: Any) -> None:
        self.channel.basic_publish("", queue, body, pika.BasicProperties(**props))

    def drain(self, queue: str) -> list[tuple[Any, bytes]]:
        out = []
        while True:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    def close(self) -> None:
        try:
            self.connection.close()
        except pika.exceptions.AMQPError:
            pass  # already closed under us (close_all_connections, restart)
