"""Where the broker is, and how to print its address without the password."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from .errors import ConfigurationError

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672/"
BROKER_ENV = "FAIRQ_BROKER_URL"
DEFAULT_QUEUE = "default"
#: A message delivered this many times without being settled (its worker died each time) is dead-lettered.
DEFAULT_DELIVERY_LIMIT = 5
#: Messages larger than this are refused at ``send`` (PRODUCT.md: 1 MiB default).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s/]*)@", re.I)


def broker_url(explicit: str | None = None) -> str:
    """The broker URL: the explicit one, else ``$FAIRQ_BROKER_URL``, else the default.

    ``amqp(s)://`` needs a host, or several for a cluster (``amqp://u:pw@rabbit1,rabbit2:5673/vhost``;
    several whole URLs separated by spaces are joined into that form); ``sqlite://`` needs a path (``sqlite:///abs/path.db``);
    ``memory://[NAME]`` takes nothing more.

    Read when called, never at import, so tests and CLIs can set the environment late.
    """
    url = (explicit or os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL).strip()
    if len(url.split()) > 1:  # several addresses, as a repeated -b gives: one URL of the cluster
        from .broker.rabbitmq.hosts import join

        url = join(url.split())
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return url
    if parts.scheme == "sqlite":
        if not (parts.netloc + parts.path).strip("/"):
            raise ConfigurationError(f"sqlite broker URL needs a database path, e.g. sqlite:///var/lib/fairq.db: "
                                     f"{url!r}")
        return url
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigurationError("broker URL must start with amqp://, amqps://, sqlite:/// or memory://, "
                                 f"got {redact(url)!r}")
    if not parts.netloc.rpartition("@")[2]:
        raise ConfigurationError(f"broker URL has no host: {redact(url)!r}")
    from .broker.rabbitmq.client import check_tls  # here: the broker package imports this module
    from .broker.rabbitmq.hosts import connect_timeout, split

    split(url)  # every host of a cluster's URL well-formed
    connect_timeout(url)
    check_tls(url)  # the TLS query parameters the AMQP client reads, for every host alike
    return url


def redact(text: str) -> str:
    """Replace every password inside URLs in ``text`` with ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
