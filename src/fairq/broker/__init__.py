"""The broker seam (:mod:`.base`), backend objects (:mod:`.backend`) and the backends."""

from __future__ import annotations

from .backend import SCHEMES, Backend, MemoryBackend, RabbitMQBackend, SQLiteBackend, open_backend
from .base import Broker, BrokerDeath, Consumer, Delivery, QueueSpec, QueueStats
from .rabbitmq.options import QueueKind, kind_option, queue_options  # RabbitMQ's queue option, named by App (no AMQP client loaded)


def connect_url(url: str) -> Broker:
    """A new, unconnected broker for ``url``: ``open_backend(url).broker()``."""
    return open_backend(url).broker()


__all__ = ["SCHEMES", "Backend", "Broker", "BrokerDeath", "Consumer", "Delivery", "MemoryBackend", "QueueKind", "QueueSpec",
           "QueueStats", "RabbitMQBackend", "SQLiteBackend", "connect_url", "kind_option", "open_backend",
           "queue_options"]
