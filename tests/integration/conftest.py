from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Amqp, Journal, unique

from tests.support import vhosts

from fairq.broker.topology import dead_letter_queue


@pytest.fixture
def amqp(broker_url: str) -> Iterator[Amqp]:
    client = Amqp(broker_url)
    yield client
    client.close()


@pytest.fixture
def queue(amqp: Amqp) -> Iterator[str]:
    """A fresh queue name; the queue and its dead-letter queue are deleted afterwards."""
    name = unique()
    yield name
    amqp.delete(name, dead_letter_queue(name))


@pytest.fixture
def private_vhost(broker_url: str) -> Iterator[str]:
    """A fresh virtual host on the shared node (tests/support/vhosts.py), deleted afterwards."""
    with vhosts.private_vhost(broker_url) as url:
        yield url


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")


@pytest.fixture
def worker_env(journal: Journal, broker_url: str) -> dict[str, str]:
    return {"FAIRQ_TEST_JOURNAL": str(journal.path), "FAIRQ_BROKER_URL": broker_url}
