"""Cross-process wake-ups: a publisher tells idle consumers of a queue that it has work.

Each consuming broker binds a Unix datagram socket in Linux's abstract namespace (a name, no
file: nothing stale is left behind by ``kill -9``, and no path-length limit from a deep
database directory) and writes its name into its ``sessions`` row. A publisher, in the
transaction that stores the message, reads the names of the sessions consuming that queue
(a join of two tiny tables) and after the commit sends each one byte. The consumer's event
loop watches the socket with ``add_reader``: an idle worker sleeps in ``epoll`` and wakes
within a scheduling delay of the send, using no CPU while it waits.

A wake-up can be lost (a full socket buffer, a consumer that registered a moment too late):
consumers also look again after :data:`FALLBACK` seconds, or at the next ``ready_at`` of a
delayed message, whichever is sooner. That timer is the only polling, and it is slow. Where
abstract sockets do not exist (not Linux), the timer alone remains (up to 1 s latency).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterable

#: Seconds an idle consumer sleeps at most before looking again without a wake-up.
FALLBACK = 1.0
_sender: tuple[int, socket.socket] | None = None


class WakeSocket:
    """The socket one broker's consumers are woken through."""

    def __init__(self) -> None:
        self.address = f"fairq-{os.getpid()}-{secrets.token_hex(8)}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind("\0" + self.address)
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def create(cls) -> WakeSocket | None:
        """A bound socket, or None where abstract Unix sockets are not available."""
        try:
            return cls()
        except (OSError, AttributeError):
            return None

    def listen(self, woken: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                while self._sock.recv(64):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            woken()

        self._loop.add_reader(self._sock.fileno(), readable)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def consumers_of(conn: sqlite3.Connection, queues: Iterable[str]) -> list[str]:
    """Wake addresses of the sessions consuming any of ``queues``."""
    names = list(queues)
    if not names:
        return []
    marks = ",".join("?" * len(names))
    return [row[0] for row in conn.execute(
        f"SELECT DISTINCT s.wake FROM consumers c JOIN sessions s ON s.id = c.session "
        f"WHERE c.queue IN ({marks}) AND s.wake IS NOT NULL", names)]


def notify(addresses: Iterable[str]) -> None:
    """Send one byte to each address; a gone or saturated receiver is skipped (it has the fallback)."""
    global _sender
    if _sender is None or _sender[0] != os.getpid():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _sender = (os.getpid(), sock)
    for address in addresses:
        try:
            _sender[1].sendto(b"!", "\0" + address)
        except OSError:
            pass
