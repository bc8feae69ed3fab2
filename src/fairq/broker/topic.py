"""AMQP topic patterns, matched as RabbitMQ's topic exchange matches them, for the backends without one.

Words are separated by dots; ``*`` stands for exactly one word, ``#`` for zero or more.
``task.*`` matches ``task.started``; ``#`` matches everything; ``worker.#`` matches
``worker.heartbeat`` (and ``worker``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConfigurationError


def check(pattern: str) -> str:
    """``pattern`` if it is a topic pattern (dot-separated non-empty words), else ConfigurationError."""
    if not pattern or any(word == "" for word in pattern.split(".")):
        raise ConfigurationError(f"not a topic pattern: {pattern!r} (dot-separated words; * is one word, # any)")
    return pattern


def matches(pattern: str, key: str) -> bool:
    """Does the topic ``pattern`` match the routing ``key``?"""
    return _match(tuple(pattern.split(".")), tuple(key.split(".")))


def _match(words: tuple[str, ...], key: tuple[str, ...]) -> bool:
    if not words:
        return not key
    head, rest = words[0], words[1:]
    if head == "#":
        return any(_match(rest, key[i:]) for i in range(len(key) + 1))
    return bool(key) and (head == "*" or head == key[0]) and _match(rest, key[1:])


def matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test for routing keys: does any of ``patterns`` match? Answers are remembered per key
    (events have a handful of keys). ConfigurationError for a bad pattern."""
    checked = [check(p) for p in patterns]
    known: dict[str, bool] = {}

    def test(key: str) -> bool:
        answer = known.get(key)
        if answer is None:
            answer = known[key] = any(matches(p, key) for p in checked)
        return answer

    return test
