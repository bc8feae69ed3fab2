"""The lines ``fairq worker`` prints as it starts: what runs, where, and which tasks it knows.

Shown at every log level (see :data:`fairq.logs.BANNER`), so a worker that was
started on the wrong module, queue or broker says so before anything goes missing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from ..config import redact
from ..logs import BANNER
from .config import WorkerConfig


def banner_lines(config: WorkerConfig, broker_url: str, queues: Iterable[str], tasks: Iterable[str],
                 metrics_url: str | None = None) -> list[str]:
    """The banner for ``config``; ``queues`` and ``tasks`` as the worker processes will use them;
    ``metrics_url``: where ``/metrics`` is served (--metrics-port), if it is."""
    name = config.name or f"{socket.gethostname()}.<pid>"
    if config.name and config.processes > 1:
        name = f"{config.name}.1..{config.processes}"
    runs = (f"raw handler {config.raw_handler}" if config.raw_handler
            else ", ".join(sorted(tasks)) or "(none)")
    lines = [
        f"fairq worker {name}: broker {redact(broker_url)}, queues {', '.join(queues) or '(none)'}",
        f"fairq worker {name}: {config.processes} process(es) x {config.threads} thread(s), "
        f"prefetch {config.prefetch}, log level {config.log_level}{'' if config.events else ', events off'}",
        f"fairq worker {name}: tasks: {runs}",
    ]
    if metrics_url:
        lines.append(f"fairq worker {name}: metrics on {metrics_url}")
    return lines


def show_banner(config: WorkerConfig, broker_url: str, queues: Iterable[str], tasks: Iterable[str],
                metrics_url: str | None = None) -> None:
    for line in banner_lines(config, broker_url, list(queues), list(tasks), metrics_url):
        BANNER.info("%s", line)
