"""Queue figures from the backend (data only; the CLI and the dashboard draw them), through the seam alone.

Each backend answers in its own way: RabbitMQ gives ready messages and consumers of a named
queue over AMQP (a passive declare), and lists queues and counts unacked messages only
through its management API, when it answers; SQLite and memory know everything, delayed
messages per queue included. RabbitMQ keeps every queue's delayed messages together in its
delay chain: :attr:`Counts.delayed_in_common` counts them. Where the backend cannot list, the
queues looked up are those named, those the workers announce, ``default`` and those in
``$FAIRQ_QUEUES``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..broker import Broker, open_backend
from ..broker.topology import dead_letter_queue, is_dead_letter_queue, is_internal
from ..config import DEFAULT_QUEUE

__all__ = ["DEFAULT_MANAGEMENT_URL", "QUEUES_ENV", "Counts", "QueueRow", "collect", "count", "discoverable_queues"]

DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
#: Queues ``fairq status`` looks up when given none and the backend cannot list queues (RabbitMQ without
#: an answering management API), comma- or space-separated, besides ``default``.
QUEUES_ENV = "FAIRQ_QUEUES"


def discoverable_queues(environ: dict[str, str] | None = None) -> list[str]:
    """What ``status`` looks up unnamed where the backend cannot list: ``default``, then ``$FAIRQ_QUEUES`` in order."""
    listed = (os.environ if environ is None else environ).get(QUEUES_ENV, "")
    return list(dict.fromkeys([DEFAULT_QUEUE, *(n for n in re.split(r"[\s,]+", listed) if n)]))


@dataclass(frozen=True)
class QueueRow:
    """One queue as the backend tells it; None where it cannot tell."""

    name: str
    ready: int | None
    consumers: int | None
    dead_lettered: int | None
    unacked: int | None = None
    kind: str | None = None
    exists: bool = True
    #: Waiting out a delay; None where the backend keeps all queues' delays together (see Counts).
    delayed: int | None = None


@dataclass(frozen=True)
class Counts:
    """One look at the backend's queues."""

    rows: tuple[QueueRow, ...]
    #: The backend listed its queues (RabbitMQ: the management API answered), so every queue is here.
    listed: bool
    #: Delayed messages of every queue together, where the backend cannot tell them apart by queue.
    delayed_in_common: int | None = None
    at: float = field(default_factory=time.time)

    def row(self, name: str) -> QueueRow | None:
        return next((row for row in self.rows if row.name == name), None)


async def _rows(broker: Broker, names: Iterable[str]) -> list[QueueRow]:
    rows = []
    for name in names:
        stats = await broker.stats(name)
        dead = await broker.stats(dead_letter_queue(name))
        if stats is None:
            rows.append(QueueRow(name, None, None, dead.ready if dead else None, exists=False))
        else:
            rows.append(QueueRow(name, stats.ready, stats.consumers, dead.ready if dead else 0,
                                 unacked=stats.unacked, kind=stats.kind, delayed=stats.delayed))
    return rows


async def count(broker: Broker, queues: Sequence[str] = (), *, also: Iterable[str] = ()) -> Counts:
    """The queues named in ``queues`` (missing ones marked), else every queue the backend lists, else
    those of :func:`discoverable_queues` and ``also`` (the workers' queues) that exist; on a connected broker."""
    listed = await broker.list_queues()
    in_common = await broker.delayed_in_common()
    if queues:
        return Counts(tuple(await _rows(broker, dict.fromkeys(queues))), listed is not None, in_common)
    if listed is not None:
        names = [n for n in listed if not is_dead_letter_queue(n) and not is_internal(n)]
        return Counts(tuple(await _rows(broker, names)), True, in_common)
    names = list(dict.fromkeys([*discoverable_queues(), *also]))
    return Counts(tuple(row for row in await _rows(broker, names) if row.exists), False, in_common)


async def _collect(broker_url: str, queues: list[str], management_url: str | None) -> Counts:
    broker = open_backend(broker_url, management_url=management_url).broker()
    await broker.connect()
    try:
        return await count(broker, queues)
    finally:
        await broker.close()


def collect(broker_url: str, queues: list[str], management_url: str | None = DEFAULT_MANAGEMENT_URL) -> Counts:
    """:func:`count` on a connection of its own, for synchronous callers."""
    return asyncio.run(_collect(broker_url, queues, management_url))
