"""Collect queue figures (data only; the CLI prints them), from the broker seam alone.

Each backend answers in its own way: RabbitMQ gives ready messages and consumers of
a named queue over AMQP, and lists queues and counts unacked messages only through
its management API (when it answers); SQLite and memory know everything. Where the
backend cannot list, only the queues fairq can guess are looked up: ``default`` and
those named in ``$FAIRQ_QUEUES``.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

from .broker import Broker, open_backend
from .broker.topology import dead_letter_queue, is_dead_letter_queue, is_internal
from .config import DEFAULT_QUEUE

DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
#: Queues ``fairq status`` looks up when given none and the backend cannot list queues (RabbitMQ without
#: an answering management API), comma- or space-separated, besides ``default``.
QUEUES_ENV = "FAIRQ_QUEUES"


def discoverable_queues(environ: dict[str, str] | None = None) -> list[str]:
    """What ``status`` looks up unnamed where the backend cannot list: ``default``, then ``$FAIRQ_QUEUES`` in order."""
    listed = (os.environ if environ is None else environ).get(QUEUES_ENV, "")
    return list(dict.fromkeys([DEFAULT_QUEUE, *(n for n in re.split(r"[\s,]+", listed) if n)]))


@dataclass
class QueueRow:
    name: str
    ready: int | None
    consumers: int | None
    dead_lettered: int | None
    unacked: int | None = None
    kind: str | None = None
    exists: bool = True


async def _rows(broker: Broker, names: list[str]) -> list[QueueRow]:
    rows = []
    for name in names:
        stats = await broker.stats(name)
        dead = await broker.stats(dead_letter_queue(name))
        if stats is None:
            rows.append(QueueRow(name, None, None, dead.ready if dead else None, exists=False))
        else:
            rows.append(QueueRow(name, stats.ready, stats.consumers, dead.ready if dead else 0,
                                 unacked=stats.unacked, kind=stats.kind))
    return rows


async def _collect(broker_url: str, queues: list[str], management_url: str | None) -> tuple[list[QueueRow], bool]:
    broker = open_backend(broker_url, management_url=management_url).broker()
    await broker.connect()
    try:
        listed = await broker.list_queues()
        if listed is None:
            if queues:
                return await _rows(broker, queues), False
            return [row for row in await _rows(broker, discoverable_queues()) if row.exists], False
        names = queues or [n for n in listed if not is_dead_letter_queue(n) and not is_internal(n)]
        return await _rows(broker, names), True
    finally:
        await broker.close()


def collect(broker_url: str, queues: list[str], management_url: str | None = DEFAULT_MANAGEMENT_URL) -> tuple[list[QueueRow], bool]:
    """Rows for ``queues``, and whether the backend could list queues (and so count unacked messages).

    With no queues named: every queue the backend lists (RabbitMQ: when its management
    API at ``management_url`` answers), else those of :func:`discoverable_queues` that exist.
    """
    return asyncio.run(_collect(broker_url, queues, management_url))
