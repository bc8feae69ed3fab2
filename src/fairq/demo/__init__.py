"""The article's experiment, runnable: its worker callback as a raw handler, and ``fairq demo``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def dot_seconds() -> float:
    """Seconds per '.' in a message body: ``$FAIRQ_DOT_SECONDS`` (default 1.0, as in the article)."""
    return float(os.environ.get("FAIRQ_DOT_SECONDS", "1.0"))


def _say(line: str) -> None:
    print(line, flush=True)


def dots(body: bytes, echo: Callable[[str], None] = _say, seconds_per_dot: float | None = None) -> None:
    """The article's worker callback: one second (or ``FAIRQ_DOT_SECONDS``) of work per '.'."""
    echo(f" [x] Received {body.decode(errors='replace')!r}")
    time.sleep(body.count(b".") * (dot_seconds() if seconds_per_dot is None else seconds_per_dot))
    echo(" [x] Done")
