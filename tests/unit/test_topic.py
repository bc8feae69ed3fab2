"""Topic patterns on the backends without RabbitMQ's topic exchange: matched as RabbitMQ matches them."""

from __future__ import annotations

import pytest

from fairq.broker.topic import matcher, matches
from fairq.errors import ConfigurationError


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("#", "task.started", True),
    ("#", "worker", True),
    ("task.#", "task.started", True),
    ("task.#", "task", True),
    ("task.#", "worker.heartbeat", False),
    ("task.*", "task.started", True),
    ("task.*", "task", False),
    ("task.*", "task.started.extra", False),
    ("*.heartbeat", "worker.heartbeat", True),
    ("*.heartbeat", "task.started", False),
    ("task.started", "task.started", True),
    ("task.started", "task.succeeded", False),
    ("#.failed", "task.failed", True),
    ("a.#.z", "a.z", True),
    ("a.#.z", "a.b.c.z", True),
    ("a.#.z", "a.b.c", False),
    ("task.dead-lettered", "task.dead-lettered", True),
])
def test_patterns_match_as_on_a_topic_exchange(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key) is expected


def test_a_matcher_tries_each_pattern() -> None:
    wants = matcher(["task.failed", "worker.*"])
    assert wants("task.failed") and wants("worker.online")
    assert not wants("task.started")
    assert wants("task.failed")  # remembered answers stay right


@pytest.mark.parametrize("pattern", ["", "task.", ".x", "a..b"])
def test_a_malformed_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ConfigurationError):
        matcher([pattern])
