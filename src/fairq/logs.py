"""Logging setup for fairq's processes: one line per event, passwords never shown."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from .broker.rabbitmq.client import quiet_client_logs
from .config import redact
from .errors import ConfigurationError

#: ``fairq worker --log-level`` choices, most verbose first.
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "warning"
LOG_LEVEL_ENV = "FAIRQ_LOG_LEVEL"
#: The worker's start-up lines (the banner, each process's "consuming" line): shown at every level,
#: as a user expects to see what a worker runs without asking for more logs.
BANNER = logging.getLogger("fairq.banner")


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces any password inside a URL with ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def resolve_log_level(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The level name: ``--log-level`` if given, else ``$FAIRQ_LOG_LEVEL``, else ``warning``."""
    env = os.environ if environ is None else environ
    if option:
        chosen, source = option, "--log-level"
    elif env.get(LOG_LEVEL_ENV, "").strip():
        chosen, source = env[LOG_LEVEL_ENV].strip(), LOG_LEVEL_ENV
    else:
        return DEFAULT_LOG_LEVEL
    if chosen.lower() not in LOG_LEVELS:
        raise ConfigurationError(f"{source} must be one of {', '.join(LOG_LEVELS)}, got {chosen!r}")
    return chosen.lower()


def configure_logging(level: int | str = logging.INFO, *, banner: bool = False) -> None:
    """Log to stderr at ``level`` (a number or one of :data:`LOG_LEVELS`); keep the AMQP client's own
    chatter out unless FAIRQ_DEBUG is set (fairq says each of its errors in one line of its own)."""
    number = getattr(logging, level.upper()) if isinstance(level, str) else level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(number)
    # A worker's start-up lines show whatever the level; other commands (the demo runs workers in-process)
    # keep them quiet below their own level.
    BANNER.setLevel(logging.INFO if banner else logging.NOTSET)
    quiet_client_logs()
