"""The RabbitMQ backend: the one package in fairq that speaks AMQP (aiormq, pamqp) or knows ``x-`` arguments.

Its names are loaded when first used, so :mod:`.options` and :mod:`.client` (what App, the
configuration and logging need to know) can be imported without loading the AMQP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .acks import AckBatcher
    from .connection import RabbitMQBroker
    from .deliveries import RabbitConsumer, RabbitDelivery, death_of
    from .properties import SharedProperties, to_envelope, to_properties

_HOMES = {
    "AckBatcher": "acks",
    "RabbitMQBroker": "connection",
    "RabbitConsumer": "deliveries",
    "RabbitDelivery": "deliveries",
    "death_of": "deliveries",
    "SharedProperties": "properties",
    "to_envelope": "properties",
    "to_properties": "properties",
}

__all__ = ["AckBatcher", "RabbitConsumer", "RabbitDelivery", "RabbitMQBroker", "SharedProperties", "death_of",
           "to_envelope", "to_properties"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
