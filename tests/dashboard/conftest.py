"""The dashboard's HTTP tests: ``backend`` (amqp, sqlite, memory) and a dashboard ``served`` on it per module
(tests/support/dashboard_fixtures.py), a fresh ``queue`` and ``journal`` per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import Harness, unique_queue
from tests.support.dashboard_fixtures import backend, served  # noqa: F401  (fixtures)
from tests.support.workers import Journal


@pytest.fixture
def queue(backend: Harness) -> Iterator[str]:  # noqa: F811
    name = unique_queue("dashboard")
    yield name
    backend.delete_with_dead_letters(name)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")
