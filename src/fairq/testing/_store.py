"""A private ``memory://`` store with a hand-moved clock, registered under a unique name.

Producer and worker find a memory store by its URL's name, so the store a test moves the clock of
must be the one that name resolves to. Registering and forgetting it touches the memory backend's
registry; this module is the only place that does.
"""

from __future__ import annotations

import itertools
import os

from ..broker import memory
from ..broker.memory import ManualClock, MemoryStore

_counter = itertools.count(1)


def private_store() -> tuple[str, MemoryStore]:
    """A new store on a :class:`ManualClock` at 0, and the ``memory://`` URL that reaches it."""
    name = f"fairq-testing-{os.getpid()}-{next(_counter)}"
    store = MemoryStore(ManualClock())
    with memory._stores_lock:
        memory._stores[name] = store
    return f"memory://{name}", store


def forget(url: str) -> None:
    """Drop the store of ``url`` from the registry (its messages go with it)."""
    name = url.removeprefix("memory://")
    with memory._stores_lock:
        memory._stores.pop(name, None)


def next_due(store: MemoryStore) -> float | None:
    """When the earliest delayed message of ``store`` becomes ready (its clock's time), or None."""
    delayed = store._delayed  # the memory backend keeps them as a heap of (due, seq, queue, message)
    with store.lock:
        return delayed[0][0] if delayed else None


def delayed_count(store: MemoryStore) -> int:
    with store.lock:
        return len(store._delayed)
