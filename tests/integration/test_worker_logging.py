"""What a real `fairq worker` writes to stderr: the banner, task lines at info, failures at warning."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import TASKS, Amqp, Journal, WorkerProcess, wait_for, worker_process

from fairq import App
from fairq.broker.topology import dead_letter_queue


def send(broker_url: str, queue: str, task: str, *args: object) -> str:
    app = App(broker=broker_url)
    try:
        return app.send(task, list(args), queue=queue)
    finally:
        app.close()


def lines_with(worker: WorkerProcess, *needles: str) -> list[str]:
    return [line for line in list(worker.lines) if all(n in line for n in needles)]


def test_info_logs_a_sync_tasks_start_while_it_runs_and_its_end_with_outcome_and_time(
        broker_url: str, queue: str, journal: Journal, worker_env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "--name", "logw", "--log-level", "info",
                        env={**worker_env, "FAIRQ_LOG_LEVEL": "warning"}) as worker:  # the option wins
        held = send(broker_url, queue, "gated", "held", str(gate))
        wait_for(lambda: journal.tags("start") == ["held"], what="the task to start")
        # Logged as the thread starts it, not once it ends: the gate is still closed.
        wait_for(lambda: lines_with(worker, f"logw: start gated {held}"), what="the start line")
        assert not lines_with(worker, " end ", held)
        gate.touch()
        end = wait_for(lambda: lines_with(worker, f"logw: end gated {held} ok "), what="the end line")
        quick = send(broker_url, queue, "arecord", "async")
        wait_for(lambda: lines_with(worker, f"logw: end arecord {quick} ok "), what="the async task's end line")
    assert re.search(rf" INFO logw: end gated {held} ok \d+\.\d{{3}} s$", end[0]), end
    assert len(lines_with(worker, f"logw: start arecord {quick}")) == 1


def test_by_default_the_banner_and_failures_show_but_task_lines_do_not(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "-t", "2", "--name", "quiet",
                        env={**worker_env, "FAIRQ_LOG_LEVEL": ""}) as worker:
        ok = send(broker_url, queue, "record", "fine")
        failing = send(broker_url, queue, "always_fails", "bad")  # max_retries=2
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the dead letter")
        wait_for(lambda: lines_with(worker, failing, "attempt 3/3 failed"), what="the last failure line")
    banner = "\n".join(lines_with(worker, "fairq worker quiet: "))
    assert f"queues {queue}" in banner and "1 process(es) x 2 thread(s)" in banner and "prefetch " in banner
    assert "broker amqp://guest:***@" in banner and "tasks: " in banner and "always_fails, arecord" in banner
    assert "guest:guest" not in worker.output()
    assert not lines_with(worker, ok) and journal.tags("start").count("fine") == 1  # ran, silently
    first, second, third = lines_with(worker, failing, "failed: KeyError: 'bad'")
    assert " WARNING quiet: always_fails " in first and "attempt 1/3" in first and "retry 1/2 in " in first
    assert "attempt 2/3" in second and "retry 2/2 in " in second
    assert "attempt 3/3" in third and "dead-lettered (task failed: no retries left" in third
    assert "Traceback" not in worker.output()


def test_debug_adds_the_traceback_of_a_failure(broker_url: str, amqp: Amqp, queue: str,
                                               worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env={**worker_env, "FAIRQ_LOG_LEVEL": "debug"}) as worker:
        send(broker_url, queue, "explode", "kaboom")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the dead letter")
        wait_for(lambda: worker.count("ValueError: kaboom") >= 2, what="the traceback")
    assert worker.count("Traceback (most recent call last)") == 1
    assert worker.count("in explode") == 1
