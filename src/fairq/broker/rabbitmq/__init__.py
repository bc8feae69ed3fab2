"""The RabbitMQ backend: the one package in fairq that speaks AMQP (aiormq, pamqp) or knows ``x-`` arguments."""

from __future__ import annotations

from .acks import AckBatcher
from .connection import RabbitMQBroker
from .deliveries import RabbitConsumer, RabbitDelivery, death_of
from .properties import SharedProperties, to_envelope, to_properties

__all__ = ["AckBatcher", "RabbitConsumer", "RabbitDelivery", "RabbitMQBroker", "SharedProperties", "death_of",
           "to_envelope", "to_properties"]
