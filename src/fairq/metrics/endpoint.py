"""The supervisor's side of the metrics: ``/metrics`` for the whole ``fairq worker``, whatever ``-p`` is.

Why multiprocess mode rather than children reporting to the supervisor: a child's counts are in
its memory-mapped file the moment they change, so one killed with ``kill -9`` (or crashed by a
task) loses none of them, and a scrape needs no round trip to busy children; the supervisor only
reads files. The price is a directory of files, one set per process that ever ran: this endpoint
makes one per ``fairq worker`` (``fairq-metrics-PID-*`` in the temp directory), hands it to the
children in ``$PROMETHEUS_MULTIPROC_DIR``, drops an exited child's gauges (its counters stay,
so the totals keep its work) and deletes the directory on exit.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["METRICS_DIR_ENV", "METRICS_PORT_ENV", "METRICS_HOST_ENV", "MetricsEndpoint"]

#: The variable prometheus_client reads, at import, to write values to files instead of memory.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PORT_ENV = "FAIRQ_METRICS_PORT"
METRICS_HOST_ENV = "FAIRQ_METRICS_HOST"
#: All interfaces, as Prometheus exporters listen: the scraper usually runs on another host.
DEFAULT_HOST = "0.0.0.0"


class MetricsEndpoint:
    """The HTTP server and the shared directory; :meth:`open` then :meth:`close` (or ``with``)."""

    def __init__(self, port: int, host: str = DEFAULT_HOST) -> None:
        self.requested_port = port
        self.host = host
        self.directory = ""
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> MetricsEndpoint:
        """Make the directory and listen; a port in use is a :class:`ConfigurationError`."""
        # Imported here: prometheus_client costs nothing to a worker without metrics.
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = tempfile.mkdtemp(prefix=f"fairq-metrics-{os.getpid()}-")
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        try:
            self._server, self._thread = start_http_server(self.requested_port, self.host, registry)
        except OSError as exc:
            shutil.rmtree(self.directory, ignore_errors=True)
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened: {exc.strerror or exc}"
            raise ConfigurationError(f"--metrics-port {self.requested_port}: {self.host}:{self.requested_port} "
                                     f"{why}") from None
        return self

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for ``--metrics-port 0``)."""
        assert self._server is not None, "open() first"
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def child_env(self) -> dict[str, str]:
        """What a worker process's environment needs to write its metrics here."""
        return {METRICS_DIR_ENV: self.directory}

    def process_exited(self, pid: int) -> None:
        """A child is gone: its gauges no longer count (its counters do, so totals keep its work)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop listening (the port is free once this returns) and delete the directory."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MetricsEndpoint:
        return self.open() if self._server is None else self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
