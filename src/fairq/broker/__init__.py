"""The broker seam (:mod:`.base`) and its backends."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import Broker, Consumer, Delivery, QueueKind, QueueSpec, QueueStats

#: URL schemes and the backend each one picks.
SCHEMES = ("amqp", "amqps", "sqlite", "memory")


def connect_url(url: str) -> Broker:
    """The backend for ``url`` (not yet connected), picked by its scheme.

    ``amqp://``/``amqps://``: RabbitMQ; ``sqlite:///path``: the embedded broker; ``memory://[NAME]``:
    in-process. Each backend is imported only when asked for, so memory and sqlite users need
    no AMQP client loaded.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        from .rabbitmq import RabbitMQBroker

        return RabbitMQBroker(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url)
    if scheme == "memory":
        from .memory import MemoryBroker

        return MemoryBroker(url)
    raise ConfigurationError(f"unknown broker URL scheme {scheme!r}: use one of {', '.join(s + '://' for s in SCHEMES)}")


__all__ = ["Broker", "Consumer", "Delivery", "QueueKind", "QueueSpec", "QueueStats", "connect_url"]
