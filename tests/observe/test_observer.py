"""The Observer's picture of real workers on every backend: running tasks counted as they run, a delayed
task as delayed, a killed worker as lost, and ``once()``'s one look."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fairq.observe import lost_after, once
from tests.observe.scenes import HEARTBEAT, Watch, kill_all, watching, workers
from tests.support.workers import wait_for


@contextmanager
def opened_at_exit(gate: Path) -> Iterator[None]:
    """The gated tasks end whatever happens, so the workers stop at once."""
    try:
        yield
    finally:
        gate.touch()


def _delayed(watch: Watch, queue: str) -> int:
    view = watch.queue(queue)
    if view.delayed is not None:
        return view.delayed
    # RabbitMQ keeps every queue's delays in one chain (other tests' among them): counted together.
    together = watch.json()["delayed_in_common"]
    assert together is not None, "no count of delayed messages at all"
    return int(together)


def test_four_running_tasks_show_as_four_and_a_delayed_one_as_delayed(url: str, queue: str, tmp_path: Path,
                                                                       app_for: Any) -> None:
    gate = tmp_path / "gate"
    app = app_for(url)
    app.send("add", [0, 0], queue=queue)  # declares the queue before anyone watches it
    with workers(url, queue, tmp_path / "journal", processes=2, threads=2), watching(url, [queue]) as watch, \
            opened_at_exit(gate):
        for n in range(4):
            app.send("gated", [f"t{n}", str(gate)], queue=queue)
        wait_for(lambda: watch.queue(queue).running == 4, what="four running tasks in the picture")
        wait_for(lambda: all(w.heartbeat_age is not None for w in watch.workers()), what="both heartbeats")
        view = watch.queue(queue)
        names = {w.name for w in watch.workers()}
        assert (view.held_not_started, len(view.workers), set(view.workers)) == (0, 2, names)
        # Held: the backend's unacked count where it has one (counted on a timer: wait for the next count).
        wait_for(lambda: watch.queue(queue).held == 4, what="four held")
        running = [r for w in watch.workers() for r in w.running]
        assert sorted(r.queue for r in running) == [queue] * 4
        processes = 1 if url.startswith("memory://") else 2  # memory: two Worker objects, not one -p 2
        assert all((w.slots, w.processes, w.state) == (2, processes, "running") for w in watch.workers())

        before = _delayed(watch, queue) or 0  # RabbitMQ's chain is shared with other tests' delays
        app.send("add", [1, 2], queue=queue, delay=4)  # runs before the test ends: nothing left behind
        wait_for(lambda: _delayed(watch, queue) >= before + 1, what="the delayed task in the picture")
        assert watch.queue(queue).ready == 0

        gate.touch()
        wait_for(lambda: watch.queue(queue).running == 0
                 and sum(w.succeeded for w in watch.workers()) == 5, what="the four tasks to end")
        view = watch.queue(queue)
        assert view.wait_p50 is not None and view.wait_p99 is not None and view.wait_p99 >= view.wait_p50
        wait_for(lambda: (watch.queue(queue).rate_out or 0) > 0, what="a rate out (over a second watched at least)")
        # The delayed one's turn: out of the delays, run like any other.
        wait_for(lambda: sum(w.succeeded for w in watch.workers()) == 6, what="the delayed task to run")


def test_a_killed_worker_shows_as_lost(url: str, queue: str, tmp_path: Path, app_for: Any) -> None:
    if url.startswith("memory://"):
        pytest.skip("memory:// workers are objects in this process: there is no process to kill")
    app_for(url).send("add", [0, 0], queue=queue)
    with workers(url, queue, tmp_path / "journal") as process, watching(url, [queue]) as watch:
        wait_for(lambda: [w.state for w in watch.workers()] == ["running"] and watch.workers()[0].heartbeat_age
                 is not None, what="the worker's heartbeat")
        kill_all(process)
        (worker,) = wait_for(lambda: [w for w in watch.workers() if w.lost], timeout=lost_after(HEARTBEAT) + 10,
                             what="the killed worker to show as lost")
        assert worker.heartbeat_age is not None and worker.heartbeat_age > lost_after(HEARTBEAT)
        assert watch.queue(queue).workers == ()


def test_once_is_one_look_with_the_live_workers_in_it(url: str, queue: str, tmp_path: Path, app_for: Any) -> None:
    app_for(url).send("add", [0, 0], queue=queue)
    with workers(url, queue, tmp_path / "journal"):
        observer = asyncio.run(once(url, [queue], wait=2.2))
        data = json.loads(json.dumps(observer.as_json()))  # read now: a picture ages, and its workers with it
    (row,) = data["queues"]
    assert row["name"] == queue and row["exists"] is True and row["consumers"] == 1
    (worker,) = data["workers"]
    assert worker["state"] == "running" and worker["queues"] == [queue] and worker["heartbeat_age"] is not None
    assert data["problem"] is None
