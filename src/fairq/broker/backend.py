"""Backend objects: where fairq's queues live, built once from a URL and handed to workers and producers.

A :class:`Backend` opens nothing by itself. Each :meth:`Backend.broker` call makes a new,
unconnected :class:`~fairq.broker.base.Broker` (one connection) on it: a worker makes a fresh one
after every loss, a producer one per session. Because the backend is an object and not a URL, a
test can hand a worker and a producer the same in-memory store, and the URL is parsed once, at
the edge (:func:`open_backend`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ..config import redact
from ..errors import ConfigurationError
from .base import Broker

#: URL schemes and the backend each one picks.
SCHEMES = ("amqp", "amqps", "sqlite", "memory")


class Backend(abc.ABC):
    """A message broker fairq can connect to any number of times."""

    #: The URL this backend was opened from (may hold a password: print :attr:`display_url`).
    url: str
    #: ``url`` with its password replaced, for logs and errors.
    display_url: str
    #: ``amqp`` (also for ``amqps``), ``sqlite`` or ``memory``.
    kind: str
    #: Backend options given to :func:`open_backend` that this backend uses.
    options: Mapping[str, Any] = MappingProxyType({})

    @abc.abstractmethod
    def broker(self) -> Broker:
        """A new connection to this backend, not yet connected (call its ``connect()``)."""


class RabbitMQBackend(Backend):
    """RabbitMQ at an ``amqp://`` or ``amqps://`` URL, which may name several nodes of a cluster.

    ``management_url``: its management API, which lists queues and counts unacked
    messages (``fairq status``); None to never ask it. The brokers made here share one
    order of the nodes (shuffled once; a lost node tried last), so a reconnect goes to the next node.
    """

    kind = "amqp"

    def __init__(self, url: str, management_url: str | None = None) -> None:
        from .rabbitmq.hosts import Nodes

        self.url = url
        self.display_url = redact(url)
        self.management_url = management_url
        self.options = {"management_url": management_url} if management_url else {}
        self.nodes = Nodes(url)

    def broker(self) -> Broker:
        from .rabbitmq import RabbitMQBroker

        return RabbitMQBroker(self.url, management_url=self.management_url, nodes=self.nodes)


class SQLiteBackend(Backend):
    """The embedded broker: one SQLite file shared by every process on this host."""

    kind = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.display_url = redact(url)

    def broker(self) -> Broker:
        from .sqlite import SQLiteBroker

        return SQLiteBroker(self.url)


class MemoryBackend(Backend):
    """An in-process store (not durable): every broker of this backend shares it."""

    kind = "memory"

    def __init__(self, url: str = "memory://") -> None:
        from .memory import store_for

        self.url = self.display_url = url
        self.store = store_for(url)

    def broker(self) -> Broker:
        from .memory import MemoryBroker

        return MemoryBroker.on(self.store, self.url)


def open_backend(url: str, *, management_url: str | None = None) -> Backend:
    """The backend for ``url``, picked by its scheme; each is imported only when asked for, so memory
    and sqlite users need no AMQP client loaded.

    ``amqp://``/``amqps://``: RabbitMQ; ``sqlite:///path``: the embedded broker; ``memory://[NAME]``:
    in-process (each NAME its own store).

    Options a backend has no use for are ignored, so one call serves every scheme:
    ``management_url`` is RabbitMQ's management API (see :class:`RabbitMQBackend`).
    """
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        return RabbitMQBackend(url, management_url=management_url)
    if scheme == "sqlite":
        return SQLiteBackend(url)
    if scheme == "memory":
        return MemoryBackend(url)
    raise ConfigurationError(f"unknown broker URL scheme {scheme!r}: use one of {', '.join(s + '://' for s in SCHEMES)}")
