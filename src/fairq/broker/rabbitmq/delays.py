"""Broker-side delays without a plugin: a chain of fixed-TTL queues, one per bit of the delay.

The NServiceBus design, also used by Celery 5.5: level ``n`` holds a message for
2**n units, then dead-letters it to level ``n-1``. The routing key spells the
delay in binary, most significant bit first, followed by the destination queue:
``0.1.1.0 ... .1.images``. Each level's exchange routes a message into its queue
when its bit is 1, and straight on to the next level when it is 0; after level 0
the ``deliver`` exchange routes by the queue-name words to the work queue.

Every message in one level queue has the same TTL, so expiry is always at the
head: no head-of-line blocking, unlike one queue with per-message TTLs. Levels are
quorum queues with at-least-once dead-lettering, so a broker restart loses nothing.
What Celery's version got wrong, and this one avoids:

* the routing key is rebuilt from the real queue name on every (re)publish, never
  prefixed onto an old key, so it cannot grow (kombu#2556);
* republishing (retries) starts from fairq's own headers only, dropping
  ``x-death``, so RabbitMQ's dead-letter cycle detection never drops a message
  that passes the same levels twice (celery#9867).
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import ConfigurationError
from ..topology import DELAY_DELIVER_EXCHANGE, delay_level

#: One unit of delay, in milliseconds: delays are rounded up to it (never early).
UNIT_MS = 100
#: Number of levels: the longest delay is (2**LEVELS - 1) units ≈ 621 days.
LEVELS = 29
MAX_DELAY_SECONDS = (2**LEVELS - 1) * UNIT_MS / 1000


def units(delay_seconds: float) -> int:
    """The delay in whole units, rounded up so a message is never delivered early."""
    if delay_seconds > MAX_DELAY_SECONDS:
        raise ConfigurationError(f"delay {delay_seconds:.0f} s is over the maximum of {MAX_DELAY_SECONDS:.0f} s")
    return max(0, math.ceil(round(delay_seconds * 1000, 3) / UNIT_MS))


def routing_key(delay_seconds: float, queue: str) -> str:
    """``bit.bit...bit.queue`` for a message bound to ``queue`` after ``delay_seconds``."""
    bits = format(units(delay_seconds), f"0{LEVELS}b")
    return ".".join(bits) + "." + queue


#: AMQP's limit on a routing key or binding key, in bytes (a short string).
MAX_KEY_BYTES = 255


def destination_pattern(queue: str) -> str:
    """The binding of ``queue`` to the route exchange: any bits, then exactly the queue's words."""
    problem = undeliverable(queue)
    if problem:
        raise ConfigurationError(f"queue name {queue!r} cannot receive delayed messages ({problem})")
    return "*." * LEVELS + queue


def undeliverable(queue: str) -> str | None:
    """Why ``queue`` cannot be bound for delayed messages, or None when it can."""
    if any(word in ("*", "#") for word in queue.split(".")):
        return "'*' or '#' as a word"
    if len(("*." * LEVELS + queue).encode()) > MAX_KEY_BYTES:
        return f"over {MAX_KEY_BYTES - 2 * LEVELS} bytes"
    return None


def level_patterns(level: int) -> tuple[str, str]:
    """(pattern into this level's queue, pattern on to the next level): this level's bit is 1 / 0."""
    before = "*." * (LEVELS - 1 - level)
    return f"{before}1.#", f"{before}0.#"


def next_exchange(level: int) -> str:
    return delay_level(level - 1) if level > 0 else DELAY_DELIVER_EXCHANGE


def level_queue_arguments(level: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": (2**level) * UNIT_MS,
        "x-dead-letter-exchange": next_exchange(level),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
