"""pytest fixtures for fairq apps: ``pytest_plugins = ["fairq.testing.pytest_plugin"]`` in a conftest.py.

Define ``fairq_app`` (a fixture returning your :class:`fairq.App`); ``fairq_queue`` is then a
:class:`~fairq.testing.TestQueue` on it for one test, its sends going to a private in-memory store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..app import App
from .queue import TestQueue


@pytest.fixture
def fairq_app() -> App:
    """Override in your conftest.py: the App whose tasks the test sends."""
    raise pytest.UsageError("fairq_queue needs a fairq_app fixture: define one in conftest.py that returns "
                            "your fairq.App")


@pytest.fixture
def fairq_queue(fairq_app: App) -> Iterator[TestQueue]:
    """A TestQueue on ``fairq_app`` for this test: ``fairq_queue.run_until_idle()`` runs what was sent."""
    with TestQueue(fairq_app) as queue:
        yield queue
