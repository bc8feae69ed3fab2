"""Fixtures of the observe tests: a backend URL of each kind, apps that are closed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fairq import App
from tests.support.backends import delete_queue_and_dead_letters

KINDS = ("amqp", "sqlite", "memory")


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared RabbitMQ (each test on queues of its own, and the picture narrowed to them: a private
    virtual host would cost more than the file's tests), a SQLite file, a memory store."""
    if request.param == "amqp":
        return str(request.getfixturevalue("broker_url"))
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/fairq.db"
    return f"memory://observe-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def queue(url: str) -> Iterator[str]:
    """A fresh queue name; the queue and its dead-letter queue are deleted afterwards."""
    name = f"observe.{uuid.uuid4().hex[:10]}"
    yield name
    delete_queue_and_dead_letters(url, name)


@pytest.fixture
def app_for() -> Iterator[Callable[[str], App]]:
    apps: list[App] = []

    def make(url: str) -> App:
        app = App(broker=url)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
