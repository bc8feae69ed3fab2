"""The broker seam (:mod:`.base`) and its backends."""

from __future__ import annotations

from .base import Broker, Consumer, Delivery, QueueKind, QueueSpec, QueueStats


def connect_url(url: str) -> Broker:
    """The backend for ``url`` (not yet connected). RabbitMQ for ``amqp://`` and ``amqps://``."""
    from .rabbitmq import RabbitMQBroker

    return RabbitMQBroker(url)


__all__ = ["Broker", "Consumer", "Delivery", "QueueKind", "QueueSpec", "QueueStats", "connect_url"]
