"""Test your fairq tasks without a broker: a real worker on a private in-memory store, run on demand.

    from fairq.testing import run_tasks

    with run_tasks(app) as q:
        resize.send("cat.png", 640)
        q.run_until_idle()                 # runs it here; a task's exception is raised here
        assert q.results(resize) == [...]

Delays and retry backoff follow ``q.clock`` (``q.advance(seconds)``); dead letters are in
``q.dead_letters(queue)``. pytest: ``pytest_plugins = ["fairq.testing.pytest_plugin"]`` gives the
``fairq_queue`` fixture.
"""

from __future__ import annotations

from ._runs import Run
from .queue import DeadLettered, NotIdle, TestQueue, run_tasks

__all__ = ["DeadLettered", "NotIdle", "Run", "TestQueue", "run_tasks"]
