"""A dashboard served by real uvicorn for a test, and a reader of its event stream (SSE)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from fairq.dashboard.server import DashboardServer

from .backends import Harness
from .vhosts import private_vhost
from .workers import wait_for


@contextmanager
def harness_for(kind: str, broker_url: Callable[[], str], tmp: Path) -> Iterator[Harness]:
    """A :class:`Harness` on ``kind``: amqp a private virtual host of the shared broker (its events exchange
    too, so a dashboard sees only the test's workers), sqlite a file in ``tmp``, memory a store of its own."""
    if kind == "amqp":
        with private_vhost(broker_url()) as url:
            harness = Harness(kind, url)
            try:
                yield harness
            finally:
                harness.close()
        return
    harness = Harness(kind, f"sqlite://{tmp}/fairq.db" if kind == "sqlite" else f"memory://dash-{uuid.uuid4().hex[:10]}")
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def dashboard(url: str, **options: Any) -> Iterator[DashboardServer]:
    """The dashboard of ``url`` on a free loopback port, stopped afterwards."""
    server = DashboardServer(url, port=0, **options).start()
    try:
        yield server
    finally:
        server.stop()


class StreamReader:
    """Reads a dashboard's ``/api/stream`` on a thread; :attr:`events` holds ``(name, data)`` as they come.

    It speaks HTTP/1.0 on a plain socket (so the body is the stream itself, not chunks), which
    :meth:`close` can shut down from the test's thread at any moment."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.raw: list[str] = []
        self.status_line = ""
        parts = urlsplit(base_url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self._sock.settimeout(None)
        headers = [f"GET /api/stream HTTP/1.0", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        if auth is not None:
            headers.append("Authorization: Basic " + base64.b64encode(":".join(auth).encode()).decode())
        self._sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        self._file = self._sock.makefile("rb")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self.status_line = self._file.readline().decode().strip()
            while self._file.readline() not in (b"\r\n", b"\n", b""):
                pass  # headers
            name = None
            for raw in self._file:
                line = raw.decode().rstrip("\r\n")
                self.raw.append(line)
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    self.events.append((name, json.loads(line[6:])))
                    name = None
        except (OSError, ValueError):
            pass

    def of(self, name: str) -> list[Any]:
        return [data for kind, data in list(self.events) if kind == name]

    def bars(self) -> dict[int, list[Any]]:
        """Every bar sent so far by id, ends applied: ``[id, lane, start, end, task, outcome, message_id, ...]``."""
        bars: dict[int, list[Any]] = {}
        for kind, data in list(self.events):
            if kind in ("snapshot", "timeline"):
                for row in data.get("bars", []):
                    bars[row[0]] = list(row)
                for bar_id, end, outcome in data.get("ends", []):
                    if bar_id in bars:
                        bars[bar_id][3], bars[bar_id][5] = end, outcome
        return bars

    def lanes(self) -> dict[int, list[Any]]:
        return {row[0]: row for kind, data in list(self.events) if kind in ("snapshot", "timeline")
                for row in data.get("lanes", [])}

    def names(self) -> dict[int, str]:
        names: dict[int, str] = {}
        for kind, data in list(self.events):
            if kind == "snapshot":
                names.update(enumerate(data["names"]))
            elif kind == "timeline":
                names.update({int(i): n for i, n in data.get("names", {}).items()})
        return names

    def wait(self, condition: Callable[[StreamReader], Any], what: str, timeout: float = 30.0) -> Any:
        return wait_for(lambda: condition(self), timeout, what=what)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(10)
        self._file.close()
        self._sock.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def post(server: DashboardServer, path: str, body: Any, *, token: str | None = None,
         headers: dict[str, str] | None = None, **options: Any) -> httpx.Response:
    """A POST as the dashboard's own page sends it: JSON, its CSRF token, its own origin."""
    origin = server.url.rstrip("/")
    sent = {"Content-Type": "application/json", "Origin": origin, "Sec-Fetch-Site": "same-origin",
            "X-CSRF-Token": server.app.state.guard.csrf_token if token is None else token, **(headers or {})}
    return httpx.post(server.url.rstrip("/") + path, content=json.dumps(body), headers=sent, timeout=60, **options)
