"""Worker processes on RabbitMQ: async tasks, idle sleep, the adaptive window — all observed from outside.

Kills, signals and prefetch caps are checked on every backend in tests/delivery/test_lifecycle.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq import App, Call


def send_records(broker_url: str, queue: str, tags: list[str], seconds: float) -> None:
    app = App(broker=broker_url)
    try:
        app.send_many("record", [Call((t, seconds)) for t in tags], queue=queue)
    finally:
        app.close()


def test_async_tasks_run_concurrently_in_one_process(broker_url: str, queue: str, journal: Journal,
                                                     worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "-t", "3", env=worker_env):
        app = App(broker=broker_url)
        try:
            app.send_many("arecord", [Call(("a", 1.0)), Call(("b", 1.0)), Call(("c", 1.0))], queue=queue)
        finally:
            app.close()
        wait_for(lambda: len(journal.tags("done")) == 3, what="three async tasks")
    # all three started before any finished: they overlapped on one event loop
    kinds = [row[0] for row in journal.entries()]
    assert kinds == ["start"] * 3 + ["done"] * 3
    assert len({row[2] for row in journal.entries()}) == 1


def wake_ups(pid: int) -> int:
    """Times the threads of process ``pid`` have gone to sleep and been woken so far."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_an_idle_worker_sleeps_until_work_arrives(broker_url: str, queue: str, journal: Journal,
                                                  worker_env: dict[str, str]) -> None:
    # The watchdog (time limits, adaptive parking) ticks 10-50 times a second, but only while the
    # worker holds a task; the short tasks first make the adaptive window deep (its fastest tick).
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        send_records(broker_url, queue, [f"s{i}" for i in range(500)], 0.0)
        wait_for(lambda: len(journal.tags("done")) == 500, timeout=60, what="the short tasks")
        wait_for(lambda: worker.count("adaptive prefetch → ") >= 1, what="a deep window")
        (child,) = worker.children()
        before = wake_ups(child)
        time.sleep(2.0)  # a measurement window, not a wait: 40-100 ticks if the watchdog kept ticking
        assert wake_ups(child) - before <= 5  # the last tick and ack flush of the work just done
        send_records(broker_url, queue, ["after"], 0.0)
        wait_for(lambda: "after" in journal.tags("done"), what="a task sent to the idle worker")


def test_adaptive_prefetch_deepens_for_short_tasks_and_parks_behind_a_long_one(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "--prefetch", "adaptive", env=worker_env) as worker:
        app = App(broker=broker_url)
        try:
            app.send_many("record", [Call((f"s{i}", 0.0)) for i in range(3000)], queue=queue)
            wait_for(lambda: len(journal.tags("done")) == 3000, timeout=60, what="the short tasks")
            windows = [int(line.split("adaptive prefetch → ")[1].split()[0]) for line in worker.lines
                       if "adaptive prefetch → " in line]
            assert windows and windows[-1] > 6  # deep: the five tasks below all fit in it
            app.send_many("gated", [Call(("long", str(gate)))], queue=queue)
            app.send_many("record", [Call((f"t{i}", 0.0)) for i in range(5)], queue=queue)
            wait_for(lambda: "long" in journal.tags("start"), what="the long task to start")
            # The queue is empty, so the worker parks: the five go back to the queue, once each.
            wait_for(lambda: worker.count("parking") >= 1, what="the worker to park")
            wait_for(lambda: amqp.ready(queue) == 5, timeout=30, what="the five tasks back in the queue")
            assert not [tag for tag in journal.tags("start") if tag.startswith("t")]
            gate.touch()
            wait_for(lambda: len(set(journal.tags("done"))) == 3006, timeout=60, what="every task")
        finally:
            app.close()
    assert len(journal.tags("done")) == len(set(journal.tags("done")))  # handed back, not run twice
