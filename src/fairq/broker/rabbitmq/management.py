"""RabbitMQ's management API (HTTP), the one way to list queues and count their unacked messages.

AMQP answers only for a queue it is given by name, and without unacked counts.
Used only when the backend is given the API's URL, and only on the broker's own
host: the broker's credentials are never sent anywhere else.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ...message import as_count
from ..base import QueueStats

_LOCAL = {"localhost", "127.0.0.1", "::1"}


def _same_host(a: str | None, b: str | None) -> bool:
    return a == b or (a in _LOCAL and b in _LOCAL)


def management_queues(broker_url: str, management_url: str, timeout: float = 2.0) -> list[dict[str, Any]] | None:
    """All queues of the broker's vhost as the API describes them, or None if it does not answer (blocking)."""
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
    return [q for q in data if isinstance(q, dict)] if isinstance(data, list) else None


def _count(value: Any) -> int:
    return as_count(value) or 0


def queue_stats(listed: list[dict[str, Any]]) -> dict[str, QueueStats]:
    """The API's queue descriptions as :class:`QueueStats`, by name."""
    return {
        str(q.get("name")): QueueStats(
            str(q.get("name")),
            _count(q.get("messages_ready")),
            _count(q.get("consumers")),
            unacked=_count(q.get("messages_unacknowledged")),
            kind=str(q.get("type") or "") or None,
        )
        for q in listed
    }
