from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers import Amqp, Journal, rabbitmqctl, unique

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
    """A fresh virtual host on the shared node, where fairq has never declared anything; deleted afterwards,
    with whatever is still in it (a delay that would end after the test, in the shared
    ``fairq.delay.unroutable`` once its queue is gone)."""
    vhost = unique("fairq-test-vhost")
    user = urlsplit(broker_url).username or "guest"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(urlsplit(broker_url)._replace(path="/" + vhost))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")


@pytest.fixture
def worker_env(journal: Journal, broker_url: str) -> dict[str, str]:
    return {"FAIRQ_TEST_JOURNAL": str(journal.path), "FAIRQ_BROKER_URL": broker_url}
