"""Dramatiq's side of the benchmark: its RabbitMQ broker with default middleware.

``BENCH_MODE=confirm``: ``RabbitmqBroker(confirm_delivery=True)``, one confirm at a time.
"""

from __future__ import annotations

import dramatiq
import events
import settings
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=settings.broker_url(), confirm_delivery=settings.mode() == "confirm")
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=settings.queue(), actor_name="bench_work")
def work(i: int, seconds: float, sent: float) -> None:
    events.run_task(i, seconds, sent)


def send_batch(items: list[tuple[int, float]], sent: float) -> None:
    """One ``send`` per task."""
    for i, seconds in items:
        work.send(i, seconds, sent)


def send_one(i: int, seconds: float, sent: float) -> None:
    work.send(i, seconds, sent)


def close() -> None:
    broker.close()
