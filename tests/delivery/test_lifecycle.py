"""Workers dying, stopping and holding, on every backend: kill -9, SIGTERM, prefetch caps, crash loops.

On amqp and sqlite the workers are ``fairq worker`` processes and the signals real; on memory they are
Worker objects in this process, stopped as SIGTERM stops them, and what needs a process to die is skipped.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from fairq import Call
from fairq.broker.topology import dead_letter_queue
from tests.support.backends import Harness, ProcessWorkers
from tests.support.workers import Journal, wait_for


def busy_child(journal: Journal, children: list[int]) -> int | None:
    """A worker process that has started a task it has not finished."""
    open_tasks: dict[str, str] = {}
    for kind, tag, pid, *_ in journal.entries():
        if kind == "start":
            open_tasks[tag] = pid
        else:
            open_tasks.pop(tag, None)
    return next((int(pid) for pid in open_tasks.values() if int(pid) in children), None)


def test_kill_9_mid_task_loses_nothing_and_the_supervisor_replaces_the_process(
        backend: Harness, queue: str, journal: Journal) -> None:
    backend.require_processes()
    tags = [f"t{i}" for i in range(24)]
    with backend.workers(queue, journal, processes=2) as workers:
        assert isinstance(workers, ProcessWorkers)
        backend.send_many(queue, "record", [Call((t, 0.2)) for t in tags])
        for _ in range(2):
            children = workers.children()
            assert len(children) == 2
            victim = wait_for(lambda: busy_child(journal, children), what="a process mid-task")
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(workers.children()) == 2 and victim not in workers.children(),
                     what="the supervisor to replace the killed process")
        wait_for(lambda: set(journal.tags("done")) >= set(tags), timeout=60, what="every task to complete")
        assert workers.count("died with signal SIGKILL") == 2
    assert backend.ready(queue) == 0


def test_sigterm_finishes_the_running_task_and_hands_back_the_prefetched_ones_at_once(
        backend: Harness, queue: str, journal: Journal, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    try:
        with backend.workers(queue, journal, prefetch="4") as workers:
            backend.send_many(queue, "gated", [Call((tag, str(gate))) for tag in ["running", "p1", "p2", "p3"]])
            wait_for(lambda: journal.tags("start") == ["running"], what="the first task to start")
            wait_for(lambda: backend.held(queue) == 4, what="four deliveries held by the worker")
            workers.terminate()
            wait_for(lambda: backend.ready(queue) == 3, what="the three unstarted tasks back in the queue")
            # At once: they are back while the running task still waits for its gate, not after it.
            assert journal.tags("done") == [] and workers.alive()
            gate.touch()
            assert workers.wait(timeout=15) == 0
    finally:
        gate.touch()
    assert journal.tags("start") == ["running"] and journal.tags("done") == ["running"]
    assert backend.ready(queue) == 3


@pytest.mark.parametrize(("options", "cap"), [({"threads": 2, "prefetch": "fair"}, 2), ({"prefetch": "3"}, 3)],
                         ids=["fair-2-threads", "prefetch-3"])
def test_a_process_never_holds_more_tasks_than_its_policy_allows(backend: Harness, queue: str, journal: Journal,
                                                                tmp_path: Path, options: dict[str, Any],
                                                                cap: int) -> None:
    gate, threads = tmp_path / "gate", options.get("threads", 1)
    tags = [f"t{i}" for i in range(cap + 8)]
    try:
        with backend.workers(queue, journal, **options):
            backend.send_many(queue, "gated", [Call((tag, str(gate))) for tag in tags[:threads]])
            backend.send_many(queue, "record", [Call((tag, 0.05)) for tag in tags[threads:]])
            # Every slot busy and the rest of the backlog waiting: all the room there is to take more.
            wait_for(lambda: len(journal.tags("start")) == threads, what="every slot running")
            wait_for(lambda: backend.ready(queue) == len(tags) - cap, what=f"{cap} tasks taken")
            assert backend.held(queue) == cap
            gate.touch()
            # While the backlog drains: what is neither ready nor done is held (at least: acks follow done).
            samples: list[int] = []

            def drained() -> bool:  # ready read first: a task ending between the reads can only lower the figure
                ready = backend.ready(queue)
                done = len(journal.tags("done"))
                samples.append(len(tags) - ready - done)
                return done == len(tags)

            wait_for(drained, timeout=60, what="every task")
            assert max(samples) <= cap, samples
    finally:
        gate.touch()


def test_unlimited_prefetch_takes_everything_it_can(backend: Harness, queue: str, journal: Journal,
                                                   tmp_path: Path) -> None:
    """The yardstick above can fail: without a cap one process takes the whole backlog."""
    gate = tmp_path / "gate"
    try:
        with backend.workers(queue, journal, prefetch="unlimited"):
            backend.send_many(queue, "gated", [Call((f"t{i}", str(gate))) for i in range(10)])
            wait_for(lambda: backend.held(queue) == 10, what="all ten held by one process")
            gate.touch()
            wait_for(lambda: len(journal.tags("done")) == 10, what="the ten tasks")
    finally:
        gate.touch()


def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_the_delivery_limit(
        backend: Harness, queue: str, journal: Journal) -> None:
    backend.require_processes()
    with backend.workers(queue, journal, env={"FAIRQ_TEST_DELIVERY_LIMIT": "3"}) as workers:
        assert isinstance(workers, ProcessWorkers)
        backend.send(queue, "crash", "c")
        wait_for(lambda: backend.ready(dead_letter_queue(queue)) == 1, timeout=60, what="the crash loop to end")
        assert workers.count("died with exit code 9") == 3
    assert journal.tags("start") == ["c", "c", "c"]
    (letter,) = backend.dead_letters(queue)
    assert letter.reason == "delivery limit"
    assert backend.ready(queue) == 0
