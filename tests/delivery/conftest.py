"""The delivery suite's fixtures: one backend per module and parameter (amqp, sqlite, memory).

The backend is module-scoped, so its connection (and, in test_settlement.py, its worker) is made once per
module and backend. ``amqp`` is a private virtual host on the shared test broker (skipped locally, failing with CI=true, when it does
not answer: tests/conftest.py's ``broker_url``), each test on queues of its own; ``sqlite`` a database file
in a temporary directory (``synchronous=normal``); ``memory`` a store of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.vhosts import private_vhost
from tests.support.backends import KINDS, Harness, unique_queue
from tests.support.workers import Journal


@pytest.fixture(scope="module", params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    kind = request.param
    if kind == "amqp":
        # A virtual host of the module's own: a delay that outlives a test (an hour-long one) goes with it,
        # instead of ending in the shared node's fairq.delay.unroutable once its queue is deleted.
        with private_vhost(str(request.getfixturevalue("broker_url"))) as url:
            harness = Harness(kind, url)
            yield harness
            harness.close()
        return
    elif kind == "sqlite":
        # normal: no fsync per commit (the suite sends hundreds of messages); as safe against kill -9 as full.
        url = f"sqlite://{tmp_path_factory.mktemp('sqlite')}/fairq.db?synchronous=normal"
    else:
        url = f"memory://delivery-{uuid.uuid4().hex[:10]}"
    harness = Harness(kind, url)
    yield harness
    harness.close()


@pytest.fixture
def queue(backend: Harness) -> Iterator[str]:
    """A fresh queue name; the queue and its dead-letter queue are deleted afterwards."""
    name = unique_queue()
    yield name
    backend.delete_with_dead_letters(name)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")
