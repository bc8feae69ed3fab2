"""Shared fixtures: the broker every integration test talks to.

Locally a missing broker skips the broker tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Shared test tools live in tests/support and are imported as `tests.support...`.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

BROKER_URL = os.environ.get("FAIRQ_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), timeout=2):
            return None
    except OSError as exc:
        return f"no RabbitMQ at {parts.hostname}:{parts.port or 5672}: {exc}"


@pytest.fixture(scope="session")
def broker_url() -> str:
    """URL of the shared test broker; skip (locally) or fail (CI) if it does not answer."""
    problem = _reachable(BROKER_URL)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return BROKER_URL
