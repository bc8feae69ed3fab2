"""Logging setup for fairq's processes: one line per event, passwords never shown."""

from __future__ import annotations

import logging
import os
import sys

from .config import redact


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces any password inside a URL with ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr; keep the AMQP client's own chatter out unless FAIRQ_DEBUG is set.

    fairq translates every client error into one line of its own, so the client's
    logs would only say the same thing twice (and with tracebacks).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not os.environ.get("FAIRQ_DEBUG"):
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
