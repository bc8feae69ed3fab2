"""Where the broker is, and how to print its address without the password."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .errors import ConfigurationError

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672/"
BROKER_ENV = "FAIRQ_BROKER_URL"
DEFAULT_QUEUE = "default"
#: A message delivered this many times without being settled (its worker died each time) is dead-lettered.
DEFAULT_DELIVERY_LIMIT = 5
#: Messages larger than this are refused at ``send`` (PRODUCT.md: 1 MiB default).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

#: Query parameters of an ``amqps://`` URL that aiormq reads to set up TLS; the first three name files.
TLS_FILES = ("cafile", "certfile", "keyfile")
TLS_PARAMS = (*TLS_FILES, "capath", "cadata", "no_verify_ssl")

_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s/]*)@", re.I)


def broker_url(explicit: str | None = None) -> str:
    """The broker URL: the explicit one, else ``$FAIRQ_BROKER_URL``, else the default.

    ``amqp(s)://`` needs a host; ``sqlite://`` needs a path (``sqlite:///abs/path.db``);
    ``memory://[NAME]`` takes nothing more.

    Read when called, never at import, so tests and CLIs can set the environment late.
    """
    url = explicit or os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL
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
    if not parts.hostname:
        raise ConfigurationError(f"broker URL has no host: {redact(url)!r}")
    check_tls(url)
    return url


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


def redact(text: str) -> str:
    """Replace every password inside URLs in ``text`` with ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
