"""The nodes of a RabbitMQ cluster named by one broker URL, and the order a connection tries them in.

One URL may name several hosts, each with its own port (default 5672, 5671 for amqps)::

    amqp://user:pw@rabbit1:5672,rabbit2,rabbit3:5673/vhost?heartbeat=10

The credentials, virtual host and query (TLS files, heartbeat, ``connect_timeout``) apply to
every host. The AMQP client takes one host, so each node gets its own single-host URL.
Importable without the client: the configuration checks a URL here before any connection.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ...config import redact
from ...errors import ConfigurationError

#: Seconds a connection waits for one node before it tries the next (query parameter ``connect_timeout``):
#: a node that is frozen or cut off accepts the TCP connection, then never answers.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}

_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^/?#]*)@)?(?P<hosts>[^/?#@]*)(?P<rest>.*)$",
                  re.I | re.S)
_HOST = re.compile(r"^(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]+)(?::(?P<port>[^:]*))?$", re.I)


@dataclass(frozen=True)
class Node:
    """One node: its single-host URL (with the credentials: print :attr:`display_url`) and ``host:port``."""

    url: str
    address: str  #: ``host:port``, what logs, errors and worker events name

    @property
    def display_url(self) -> str:
        return redact(self.url)


def split(url: str) -> list[Node]:
    """The nodes ``url`` names, in its order; a ConfigurationError for an empty host or a bad port."""
    match = _URL.match(url)
    if match is None:
        raise ConfigurationError(f"not a broker URL: {redact(url)!r}")
    scheme, userinfo, hosts, rest = match["scheme"].lower(), match["userinfo"], match["hosts"], match["rest"]
    prefix = f"{match['scheme']}://" + (f"{userinfo}@" if userinfo is not None else "")
    nodes = []
    for entry in hosts.split(","):
        host, port = _host_port(entry.strip(), scheme, url)
        address = f"{host}:{port}"
        nodes.append(Node(f"{prefix}{address}{rest}", address))
    return nodes


def _host_port(entry: str, scheme: str, url: str) -> tuple[str, int]:
    parsed = _HOST.match(entry)
    if not entry or parsed is None:
        raise ConfigurationError(f"broker URL has an empty or malformed host {entry!r}: {redact(url)!r}")
    port = parsed["port"]
    if port is None or port == "":
        return parsed["host"], DEFAULT_PORTS.get(scheme, 5672)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"broker URL has a bad port {port!r} for host {parsed['host']!r}: {redact(url)!r}")
    return parsed["host"], int(port)


def join(urls: Sequence[str]) -> str:
    """Several broker addresses (a repeated ``-b``, or ``$FAIRQ_BROKER_URL`` with several) as one URL.

    The first is a whole URL; each later one is another whole URL with the same scheme, user,
    virtual host and query (those it leaves out are the first's), or just ``host[:port]``. One URL,
    because the URL is what every process gets (``fairq worker`` hands it to its children).
    """
    urls = [u.strip() for u in urls if u.strip()]
    if len(urls) <= 1:
        return urls[0] if urls else ""
    first = _URL.match(urls[0])
    if first is None:
        raise ConfigurationError(f"not a broker URL: {redact(urls[0])!r}")
    hosts = [first["hosts"]]
    for other in urls[1:]:
        if "://" not in other:
            hosts.append(other)
            continue
        match = _URL.match(other)
        if match is None:
            raise ConfigurationError(f"not a broker URL: {redact(other)!r}")
        for part in ("scheme", "userinfo", "rest"):
            if match[part] and match[part] != first[part]:
                raise ConfigurationError(
                    f"the broker addresses of one cluster must share scheme, user, virtual host and query: "
                    f"{redact(urls[0])!r} and {redact(other)!r} differ in the {part}")
        hosts.append(match["hosts"])
    userinfo = f"{first['userinfo']}@" if first["userinfo"] is not None else ""
    return f"{first['scheme']}://{userinfo}{','.join(hosts)}{first['rest']}"


def connect_timeout(url: str) -> float:
    """The ``connect_timeout`` query parameter (seconds per node), else :data:`DEFAULT_CONNECT_TIMEOUT`."""
    query = dict(parse_qsl(url.partition("?")[2].partition("#")[0]))
    value = query.get("connect_timeout")
    if value is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigurationError(f"connect_timeout in the broker URL must be a number of seconds > 0, got {value!r}")
    return seconds


class Nodes:
    """The order connections try a cluster's nodes in: shuffled once (so a fleet spreads over the
    nodes), starting where the last connection succeeded, and past a node whose connection was lost.

    One per backend, shared by the connections a process makes on it (a worker's sessions, a
    producer's), so a reconnect after a loss tries the next node first instead of the dead one.
    """

    def __init__(self, url: str, shuffle: Callable[[list[Node]], None] = random.shuffle) -> None:
        self.nodes = split(url)
        shuffle(self.nodes)
        self.connect_timeout = connect_timeout(url)
        self._start = 0

    def __len__(self) -> int:
        return len(self.nodes)

    def order(self) -> list[Node]:
        """Every node once, the one to try first first."""
        return self.nodes[self._start:] + self.nodes[:self._start]

    def connected(self, node: Node) -> None:
        """A connection to ``node`` succeeded: later connections try it first."""
        self._start = self.nodes.index(node)

    def lost(self, node: Node) -> None:
        """The connection to ``node`` was lost: later connections try the next node first."""
        index = self.nodes.index(node)
        if index == self._start:
            self._start = (index + 1) % len(self.nodes)
