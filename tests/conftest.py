"""Shared fixtures: the broker every integration test talks to.

Locally a missing broker skips the broker tests (saying how to install one) while the sqlite, memory
and unit suites run; in CI (CI=true) it fails them.
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

INSTALL_COMMAND = "sudo apt-get update && sudo apt-get install -y rabbitmq-server"
BROKER_URL = os.environ.get("FAIRQ_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), timeout=2):
            return None
    except OSError as exc:
        return (f"no RabbitMQ at {parts.hostname}:{parts.port or 5672} ({exc}): the RabbitMQ tests need one; "
                f"`make test` starts one where rabbitmq-server is installed (install it with: {INSTALL_COMMAND})")


@pytest.fixture(scope="session")
def broker_url() -> str:
    """URL of the shared test broker; skip (locally) or fail (CI) if it does not answer."""
    problem = _reachable(BROKER_URL)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return BROKER_URL
