"""``fairq dashboard``: a local web page with the live per-slot timeline, queues, workers and dead letters.

An optional part: it needs the ``dashboard`` extra (``pip install 'fairq[dashboard]'``: Starlette
and uvicorn). :func:`require` says so in one line where they are missing; nothing else in fairq
imports this package.

- :mod:`.app`: the ASGI app and its routes; :mod:`.server`: serving it with uvicorn;
- :mod:`.hub`: the event listener, the timeline it feeds, and every page's live stream (SSE);
- :mod:`.timeline`: task events folded into lanes and bars (data only);
- :mod:`.deadletter_api`: the dead-letter panel's requests (:mod:`fairq.deadletters` does the work);
- :mod:`.security`: loopback by default, a password otherwise, CSRF and origin checks on every change;
- ``static/``: the page, its script and its style, served as they are (no build step).
"""

from __future__ import annotations

import importlib.util

from ..errors import ConfigurationError

__all__ = ["EXTRA", "require"]

EXTRA = "fairq[dashboard]"
_NEEDS = ("starlette", "uvicorn")


def require() -> None:
    """Raise ConfigurationError naming the extra to install if the dashboard's libraries are missing."""
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(f"the dashboard needs {' and '.join(missing)}: pip install '{EXTRA}'")
