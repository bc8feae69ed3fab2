"""Collect queue figures (data only; the CLI prints them).

Over AMQP a passive declare gives ready messages and consumers of a named queue.
Unacked counts and the list of all queues need RabbitMQ's management API, used
when it answers. Without it and without names, only the queues fairq can guess
are looked up: ``default`` and those named in ``$FAIRQ_QUEUES``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from .broker import connect_url
from .config import DEFAULT_QUEUE
from .broker.topology import dead_letter_queue, is_dead_letter_queue, is_internal

DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
#: Queues ``fairq status`` looks up over AMQP when given none and the management API does not answer
#: (comma- or space-separated), besides ``default``.
QUEUES_ENV = "FAIRQ_QUEUES"


def discoverable_queues(environ: dict[str, str] | None = None) -> list[str]:
    """What ``status`` can look up over AMQP unnamed: ``default``, then ``$FAIRQ_QUEUES`` in order.

    AMQP cannot list queues; a passive declare only answers for a name it is given.
    """
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


async def _amqp_rows(url: str, queues: list[str]) -> list[QueueRow]:
    broker = connect_url(url)
    await broker.connect()
    try:
        rows = []
        for name in queues:
            stats = await broker.stats(name)
            dlq = await broker.stats(dead_letter_queue(name))
            if stats is None:
                rows.append(QueueRow(name, None, None, dlq.ready if dlq else None, exists=False))
            else:
                rows.append(QueueRow(name, stats.ready, stats.consumers, dlq.ready if dlq else 0))
        return rows
    finally:
        await broker.close()


_LOCAL = {"localhost", "127.0.0.1", "::1"}


def _same_host(a: str | None, b: str | None) -> bool:
    return a == b or (a in _LOCAL and b in _LOCAL)


def management_queues(broker_url: str, management_url: str, timeout: float = 2.0) -> list[dict[str, object]] | None:
    """All queues of the broker's vhost from the management API, or None if it does not answer."""
    parts = urlsplit(broker_url)
    if not _same_host(urlsplit(management_url).hostname, parts.hostname):
        return None  # never send the broker's credentials to another host
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    request = urllib.request.Request(f"{management_url.rstrip('/')}/api/queues/{quote(vhost, safe='')}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


def collect(broker_url: str, queues: list[str], management_url: str | None = DEFAULT_MANAGEMENT_URL) -> tuple[list[QueueRow], bool]:
    """Rows for ``queues``, and whether the management API answered.

    With no queues named: every queue when the management API answers, else those of
    :func:`discoverable_queues` that exist.
    """
    listed = management_queues(broker_url, management_url) if management_url else None
    if listed is None:
        if queues:
            return asyncio.run(_amqp_rows(broker_url, queues)), False
        rows = asyncio.run(_amqp_rows(broker_url, discoverable_queues()))
        return [row for row in rows if row.exists], False
    by_name = {str(q.get("name")): q for q in listed}
    names = queues or [n for n in sorted(by_name) if not is_dead_letter_queue(n) and not is_internal(n)]
    rows = []
    for name in names:
        q = by_name.get(name)
        dlq = by_name.get(dead_letter_queue(name))
        dead = int(dlq.get("messages_ready", 0) or 0) if dlq else 0  # type: ignore[call-overload]
        if q is None:
            rows.append(QueueRow(name, None, None, dead, exists=False))
            continue
        rows.append(QueueRow(
            name,
            int(q.get("messages_ready", 0) or 0),  # type: ignore[call-overload]
            int(q.get("consumers", 0) or 0),  # type: ignore[call-overload]
            dead,
            unacked=int(q.get("messages_unacknowledged", 0) or 0),  # type: ignore[call-overload]
            kind=str(q.get("type", "")) or None,
        ))
    return rows, True
