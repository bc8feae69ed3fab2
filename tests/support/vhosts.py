"""Private virtual hosts on the shared RabbitMQ node, for tests whose messages outlive them."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit


def _ctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, timeout=60)


@contextlib.contextmanager
def private_vhost(broker_url: str) -> Iterator[str]:
    """``broker_url`` moved to a fresh virtual host where fairq has never declared anything; the host is
    deleted afterwards with whatever is still in it (a delay that would end after the test, in the shared
    ``fairq.delay.unroutable`` once its queue is gone)."""
    vhost = f"fairq-test-vhost.{uuid.uuid4().hex[:10]}"
    user = urlsplit(broker_url).username or "guest"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(urlsplit(broker_url)._replace(path="/" + vhost))
    finally:
        _ctl("delete_vhost", vhost, check=False)
