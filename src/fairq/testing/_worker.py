"""The one place :mod:`fairq.testing` builds a :class:`~fairq.worker.consumer.Worker`.

Kept apart so that a change of the worker's constructor (a backend object instead of a URL)
is a change here only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..broker import QueueSpec
from ..task import Task
from ..worker.consumer import Worker
from ..worker.policy import Prefetch


def make_worker(url: str, *, queues: Sequence[QueueSpec], tasks: Mapping[str, Task[Any, Any]], name: str,
                threads: int, prefetch: Prefetch, max_message_bytes: int, delivery_limit: int,
                rng: random.Random) -> Worker:
    """A production worker on the private ``memory://`` store at ``url``."""
    return Worker(broker_url=url, queues=queues, tasks=tasks, name=name, threads=threads, prefetch=prefetch,
                  max_message_bytes=max_message_bytes, delivery_limit=delivery_limit, grace_seconds=5.0,
                  rng=rng.uniform)
