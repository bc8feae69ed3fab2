"""Worker processes: kills, signals, prefetch caps, async tasks — all observed from outside."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import TASKS, Amqp, Journal, unacked, wait_for, worker_process

from fairq import App, Call


def send_records(broker_url: str, queue: str, tags: list[str], seconds: float) -> None:
    app = App(broker=broker_url)
    try:
        app.send_many("record", [Call((t, seconds)) for t in tags], queue=queue)
    finally:
        app.close()


def test_kill_9_mid_task_loses_nothing_and_the_supervisor_replaces_the_process(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    tags = [f"t{i}" for i in range(24)]
    with worker_process(str(TASKS), "-Q", queue, "-p", "2", env=worker_env, ready=2) as worker:
        send_records(broker_url, queue, tags, 0.2)
        for kill in range(2):
            children = worker.children()
            assert len(children) == 2
            # kill a process while it is inside a task (it has started one it has not finished)
            victim = wait_for(lambda: _busy_child(journal, children), what="a child mid-task")
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(worker.children()) == 2 and victim not in worker.children(),
                     what="the supervisor to replace the killed process")
        wait_for(lambda: set(journal.tags("done")) >= set(tags), timeout=60, what="every task to complete")
        assert worker.count("died with signal SIGKILL") == 2
    assert amqp.ready(queue) == 0


def _busy_child(journal: Journal, children: list[int]) -> int | None:
    open_tasks: dict[str, str] = {}
    for kind, tag, pid, *_ in journal.entries():
        if kind == "start":
            open_tasks[tag] = pid
        else:
            open_tasks.pop(tag, None)
    for pid in open_tasks.values():
        if int(pid) in children:
            return int(pid)
    return None


def test_sigterm_finishes_the_running_task_and_returns_the_prefetched_ones_at_once(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "--prefetch", "4", env=worker_env) as worker:
        send_records(broker_url, queue, ["running", "p1", "p2", "p3"], 8.0)  # long enough for slow rabbitmqctl reads
        wait_for(lambda: journal.tags("start") == ["running"], what="the first task to start")
        wait_for(lambda: unacked(queue) == 4, what="four deliveries held by the worker")
        worker.signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: amqp.ready(queue) == 3, timeout=5, interval=0.01, what="three tasks back in the queue")
        assert time.monotonic() - signalled < 1.0
        assert worker.process.wait(timeout=15) == 0
    assert journal.tags("done") == ["running"]
    assert journal.tags("start") == ["running"]
    assert amqp.ready(queue) == 3


@pytest.mark.parametrize(("args", "cap"), [(["-t", "2"], 2), (["--prefetch", "3"], 3)])
def test_a_process_never_holds_more_unacked_tasks_than_its_policy_allows(
        broker_url: str, queue: str, journal: Journal, worker_env: dict[str, str], args: list[str], cap: int) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", *args, env=worker_env):
        send_records(broker_url, queue, [f"t{i}" for i in range(12)], 0.5)
        samples = []
        while len(journal.tags("done")) < 12 and len(samples) < 20:
            samples.append(unacked(queue))
        assert max(samples) == cap, samples


def test_unlimited_prefetch_takes_everything_it_can(broker_url: str, queue: str, journal: Journal,
                                                   worker_env: dict[str, str], tmp_path: Path) -> None:
    """The yardstick above can fail: without a cap the broker pushes the whole backlog."""
    gate = tmp_path / "gate"
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "--prefetch", "unlimited", env=worker_env):
        app = App(broker=broker_url)
        try:
            app.send_many("gated", [Call((f"t{i}", str(gate))) for i in range(10)], queue=queue)
        finally:
            app.close()
        wait_for(lambda: unacked(queue) == 10, what="all ten held by one process")
        gate.touch()
        wait_for(lambda: len(journal.tags("done")) == 10, what="the ten tasks")


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
