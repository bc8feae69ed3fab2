"""Serving the dashboard with uvicorn: in the foreground (``fairq dashboard``) or on a thread beside
other work (``fairq demo --dashboard``, tests).

The socket is bound when the server is made, so a port in use fails at once with a clear error
and port 0 picks a free one that :attr:`DashboardServer.url` then names.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from ..errors import ConfigurationError
from .app import create_app
from .hub import Hub

__all__ = ["DEFAULT_PORT", "DashboardServer"]

DEFAULT_PORT = 8400


class DashboardServer:
    """The dashboard of ``url`` on ``host:port``; :meth:`run` blocks, :meth:`start` / :meth:`stop` use a thread."""

    def __init__(self, url: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, password: str | None = None,
                 window: float = 300.0) -> None:
        self.app = create_app(url, host=host, password=password, window=window)
        self.hub: Hub = self.app.state.hub
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host.strip("[]"), port))
        except OSError as exc:
            self.socket.close()
            raise ConfigurationError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from exc
        self.host, self.port = host, self.socket.getsockname()[1]
        # timeout_graceful_shutdown: open event streams never end by themselves; the hub ends them first anyway.
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False,
                                                    lifespan="on", timeout_graceful_shutdown=1))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}/"

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self.server.serve(sockets=[self.socket])
        finally:
            self.socket.close()

    def run(self) -> None:
        """Serve until SIGINT / SIGTERM (uvicorn's own handling)."""
        asyncio.run(self.serve())

    def start(self, timeout: float = 10.0) -> DashboardServer:
        """Serve on a thread of its own; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self.run, name="fairq-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(f"the dashboard did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End the pages' streams, stop serving, wait for the thread."""
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self.hub.close_clients)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
