"""The one place :mod:`fairq.testing` builds a :class:`~fairq.worker.worker.Worker`: a production worker,
handed the test's memory backend object."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..broker import QueueSpec, open_backend
from ..task import Task
from ..worker.policy import Prefetch
from ..worker.worker import Worker


def make_worker(url: str, *, queues: Sequence[QueueSpec], tasks: Mapping[str, Task[Any, Any]], name: str,
                threads: int, prefetch: Prefetch, max_message_bytes: int, delivery_limit: int,
                rng: random.Random) -> Worker:
    """A production worker on the private ``memory://`` store at ``url``."""
    return Worker(backend=open_backend(url), queues=queues, tasks=tasks, name=name, threads=threads,
                  prefetch=prefetch, max_message_bytes=max_message_bytes, delivery_limit=delivery_limit,
                  grace_seconds=5.0, rng=rng.uniform)
