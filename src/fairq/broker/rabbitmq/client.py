"""What fairq's edges must know about the AMQP client (aiormq) without importing it.

The URL is checked where it is resolved (``fairq.config.broker_url``) and logging is set
up before any connection, in processes that may never speak AMQP: so this module
imports nothing of the client.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ...config import redact
from ...errors import ConfigurationError

#: Query parameters of an ``amqps://`` URL that aiormq reads to set up TLS; the first three name files.
TLS_FILES = ("cafile", "certfile", "keyfile")
TLS_PARAMS = (*TLS_FILES, "capath", "cadata", "no_verify_ssl")
#: The loggers the client writes to.
CLIENT_LOGGERS = ("aiormq",)


def check_tls(url: str) -> None:
    """Refuse TLS parameters that aiormq would ignore, or fail on with an error naming no file.

    On ``amqp://`` aiormq drops them and connects unencrypted; a missing file is a bare
    "No such file or directory"; a certfile without its key is "[SSL] PEM lib".
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    given = [name for name in TLS_PARAMS if name in query]
    if given and parts.scheme != "amqps":
        raise ConfigurationError(f"TLS parameters ({', '.join(given)}) need an amqps:// broker URL, "
                                 f"got {redact(url)!r}")
    for name in TLS_FILES:
        if name in query and not Path(query[name]).is_file():
            raise ConfigurationError(f"{name} in the broker URL: no such file: {query[name]}")
    if "keyfile" in query and "certfile" not in query:
        raise ConfigurationError("keyfile in the broker URL needs certfile (the client certificate)")
    certfile = query.get("certfile")
    if certfile and "keyfile" not in query and b"PRIVATE KEY-----" not in Path(certfile).read_bytes():
        raise ConfigurationError(f"certfile {certfile} holds no private key: give keyfile (--tls-key) too")


def quiet_client_logs() -> None:
    """Keep the client's own log lines out, unless ``FAIRQ_DEBUG`` is set: fairq translates each of its
    errors into one line of its own, so they would say the same thing twice (with tracebacks)."""
    if not os.environ.get("FAIRQ_DEBUG"):
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
