"""RabbitMQ's queue options: what a :class:`~fairq.broker.base.QueueSpec` can ask of this backend alone.

Importable without the AMQP client (App and the CLI name the queue type before any
connection). The other backends ignore these options.

- ``queue_kind`` (:data:`KIND`): :class:`QueueKind`, how a missing queue is created;
  quorum when not given.
- ``quorum_replicas`` (:data:`REPLICAS`): how many nodes of a cluster hold a new quorum queue
  (``x-quorum-initial-group-size``); not given, the broker's own default (every node of the
  cluster, on RabbitMQ 3.x). A quorum queue takes and delivers messages while a majority of its
  replicas is up: 2 of 3, 3 of 5.
- The consumer timeout: not an option of its own but read from the spec's
  ``task_time_limit`` plus :data:`CONSUMER_TIMEOUT_MARGIN`, declared as
  ``x-consumer-timeout`` (RabbitMQ 3.12+; older brokers ignore it).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from ..base import QueueSpec

#: The ``QueueSpec.options`` name of the queue type.
KIND = "queue_kind"
#: The ``QueueSpec.options`` name of a quorum queue's replica count.
REPLICAS = "quorum_replicas"
#: Added to a queue's longest task time limit for its consumer timeout: a task that ends at its limit
#: still has time to be settled.
CONSUMER_TIMEOUT_MARGIN = 60.0


class QueueKind(str, enum.Enum):
    """How RabbitMQ creates a queue that does not exist yet. An existing queue is used as it is."""

    QUORUM = "quorum"  #: replicated, durable; fairq's default for task queues
    CLASSIC = "classic"  #: durable classic queue with fairq's dead-letter arguments
    PLAIN = "plain"  #: durable classic queue without arguments, exactly as the article declares it


DEFAULT_KIND = QueueKind.QUORUM


def parse_kind(kind: QueueKind | str) -> QueueKind:
    """``kind`` as a :class:`QueueKind`; a ConfigurationError naming the choices if it is none."""
    try:
        return QueueKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in QueueKind)
        raise ConfigurationError(f"queue kind must be one of {choices}, got {kind!r}") from None


def kind_option(kind: QueueKind | str | None) -> dict[str, str]:
    """The ``QueueSpec.options`` that ask for ``kind`` (checked); none for None (RabbitMQ's default)."""
    return {} if kind is None else {KIND: parse_kind(kind).value}


def queue_options(kind: QueueKind | str | None = None, replicas: int | None = None) -> dict[str, str | int]:
    """The ``QueueSpec.options`` for a queue ``kind`` and a quorum queue's ``replicas`` (both checked);
    None leaves each to the broker."""
    options: dict[str, str | int] = dict(kind_option(kind))
    if replicas is not None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ConfigurationError(f"replicas must be a whole number >= 1, got {replicas!r}")
        options[REPLICAS] = replicas
    return options


def replicas_of(spec: QueueSpec) -> int | None:
    """How many nodes a new quorum queue of ``spec`` is placed on; None: the broker's default."""
    value = spec.options.get(REPLICAS)
    return int(value) if value is not None else None


def kind_of(spec: QueueSpec) -> QueueKind:
    """The queue type ``spec`` asks for."""
    return parse_kind(spec.options.get(KIND, DEFAULT_KIND))


def consumer_timeout_ms(spec: QueueSpec) -> int | None:
    """The per-queue consumer timeout ``spec`` calls for, in milliseconds; None: the broker's own."""
    if spec.task_time_limit is None:
        return None
    return int((spec.task_time_limit + CONSUMER_TIMEOUT_MARGIN) * 1000)
