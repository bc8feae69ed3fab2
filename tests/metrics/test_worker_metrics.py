"""``fairq worker -p 2 --metrics-port``: real worker processes on RabbitMQ and on SQLite, real tasks, scraped over
HTTP and read with prometheus_client's parser. One endpoint counts every process; a process killed with
``kill -9`` loses none of its counts and none is counted twice; stopping frees the port and the files."""

from __future__ import annotations

import glob
import os
import signal
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fairq
from tests.metrics.scrape import Scrape, metrics_port, scrape, until_scraped
from tests.support.backends import delete_queue_and_dead_letters
from tests.support.workers import TASKS, Journal, run_cli, wait_for, worker_process

LOCAL = ("--metrics-host", "127.0.0.1")


@pytest.fixture(params=["sqlite", "rabbitmq"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/fairq.db"
    return str(request.getfixturevalue("broker_url"))


@pytest.fixture
def queue(url: str) -> Iterator[str]:
    name = f"metrics.{uuid.uuid4().hex[:10]}"
    yield name
    delete_queue_and_dead_letters(url, name)


@pytest.fixture
def app(url: str) -> Iterator[fairq.App]:
    producer = fairq.App(broker=url)
    yield producer
    producer.close()


def _env(url: str, journal: Journal, **more: str) -> dict[str, str]:
    return {"FAIRQ_BROKER_URL": url, "FAIRQ_TEST_JOURNAL": str(journal.path), **more}


def _metrics_dirs(supervisor: int) -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), f"fairq-metrics-{supervisor}-*"))


def test_one_endpoint_counts_the_tasks_of_every_process(url: str, queue: str, app: fairq.App, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.txt")
    gate = tmp_path / "gate"
    with worker_process(str(TASKS), "-Q", queue, "-p", "2", "--prefetch", "4", "--metrics-port", "0", *LOCAL,
                        env=_env(url, journal), ready=2) as worker:
        port = metrics_port(worker)
        assert _metrics_dirs(worker.process.pid)
        first = until_scraped(port, lambda s: s.label_values("fairq_worker_slots", "process") == {"1", "2"},
                              "both processes' gauges")
        for process in ("1", "2"):
            assert first.value("fairq_worker_slots", process=process) == 1
            assert first.value("fairq_prefetch_window", process=process) == 4
            assert first.value("fairq_tasks_running", process=process) == 0
            assert first.value("fairq_tasks_held_not_started", process=process) == 0
        assert {first.types[n] for n in ("fairq_worker_slots", "fairq_prefetch_window", "fairq_tasks_running",
                                         "fairq_tasks_held_not_started")} == {"gauge"}

        # Six tasks that wait for the gate: each process holds at most 4 and runs 1, so 2 run and 4 are hoarded.
        for i in range(6):
            app.send("gated", [f"g{i}", str(gate)], queue=queue)
        hoarding = until_scraped(port, lambda s: s.total("fairq_tasks_running") == 2
                                 and s.total("fairq_tasks_held_not_started") == 4, "2 running, 4 held not started")
        assert hoarding.label_values("fairq_tasks_running", "process") == {"1", "2"}
        gate.touch()

        for i in range(3):
            app.send("record", [f"r{i}"], queue=queue)
        app.send("explode", ["kaboom"], queue=queue)  # max_retries=0: failed, then dead-lettered
        app.send("flaky", ["f", 1], queue=queue)  # fails once, retried, then succeeds
        app.send("no_such_task", [], queue=queue)  # refused: dead-lettered without a run
        done = until_scraped(port, lambda s: s.total("fairq_tasks_total") == 12
                             and s.total("fairq_dead_letters_total") == 2, "every run and dead letter counted")
        assert worker.process.poll() is None
    assert worker.process.returncode == 0

    def tasks(task: str, outcome: str) -> float | None:
        return done.value("fairq_tasks_total", queue=queue, task=task, outcome=outcome)

    assert tasks("gated", "succeeded") == 6 and tasks("record", "succeeded") == 3
    assert tasks("explode", "failed") == 1 and tasks("explode", "succeeded") == 0  # both outcomes exist from the first run
    assert tasks("flaky", "failed") == 1 and tasks("flaky", "succeeded") == 1
    assert done.label_values("fairq_tasks_total", "task") == {"gated", "record", "explode", "flaky"}
    assert done.value("fairq_task_retries_total", queue=queue, task="flaky") == 1
    assert done.total("fairq_task_retries_total") == 1
    assert done.value("fairq_dead_letters_total", queue=queue, reason="task failed") == 1
    assert done.value("fairq_dead_letters_total", queue=queue, reason="unknown task") == 1
    assert done.types["fairq_tasks"] == done.types["fairq_task_retries"] == done.types["fairq_dead_letters"] == "counter"

    # A run time per run; a queue wait per first attempt (the flaky task's second run is not one).
    assert done.types["fairq_task_run_seconds"] == done.types["fairq_task_queue_wait_seconds"] == "histogram"
    assert done.value("fairq_task_run_seconds_count", queue=queue, task="flaky") == 2
    assert done.value("fairq_task_queue_wait_seconds_count", queue=queue, task="flaky") == 1
    assert done.value("fairq_task_run_seconds_count", queue=queue, task="gated") == 6
    assert done.value("fairq_task_run_seconds_bucket", queue=queue, task="gated", le="+Inf") == 6
    waited = done.value("fairq_task_queue_wait_seconds_sum", queue=queue, task="gated")
    assert waited is not None and waited > 0
    assert done.total("fairq_task_queue_wait_seconds_count") == 11

    # Stopped: nothing answers on the port, a new endpoint can listen on it (as the server does, with
    # SO_REUSEADDR: the scrapes' connections linger in TIME_WAIT), and the processes' files are gone.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    assert _metrics_dirs(worker.process.pid) == []


def test_a_killed_process_keeps_its_counts_and_its_replacement_does_not_double_them(
        url: str, queue: str, app: fairq.App, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.txt")
    first_gate, second_gate = tmp_path / "gate1", tmp_path / "gate2"
    env = _env(url, journal, FAIRQ_METRICS_PORT="0", FAIRQ_METRICS_HOST="127.0.0.1")  # the variables, not the flags
    with worker_process(str(TASKS), "-Q", queue, "-p", "2", "--prefetch", "fair", env=env, ready=2) as worker:
        port = metrics_port(worker)
        # Under fair each process holds one task: a and b run on one process each.
        app.send("gated", ["a", str(first_gate)], queue=queue)
        app.send("gated", ["b", str(first_gate)], queue=queue)
        wait_for(lambda: len(journal.entries("start")) == 2, 30, what="a and b to start")
        assert len({row[2] for row in journal.entries("start")}) == 2
        first_gate.touch()

        def succeeded(s: Scrape) -> float | None:
            return s.value("fairq_tasks_total", queue=queue, task="gated", outcome="succeeded")

        until_scraped(port, lambda s: succeeded(s) == 2, "a and b counted")
        app.send("gated", ["c", str(second_gate)], queue=queue)
        victim = int(wait_for(lambda: next((r[2] for r in journal.entries("start") if r[1] == "c"), None), 30,
                              what="c to start"))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: worker.count(" consuming ") == 3, 30, what="the killed process's replacement to consume")
        assert victim not in worker.children()
        after = scrape(port)
        assert succeeded(after) == 2  # the killed process ran a or b: its count is still there
        # The replacement writes its gauges before it consumes; the killed one's are gone, not added to them.
        assert after.total("fairq_worker_slots") == 2
        assert after.label_values("fairq_worker_slots", "process") == {"1", "2"}

        wait_for(lambda: journal.tags("start").count("c") == 2, 60, what="c redelivered and started again")
        second_gate.touch()
        wait_for(lambda: "c" in journal.tags("done"), 30, what="c to finish")
        final = until_scraped(port, lambda s: (succeeded(s) or 0) >= 3, "c counted")
        assert succeeded(final) == 3
        assert final.total("fairq_tasks_total") == 3  # c's killed run never finished: nothing else counted
        assert final.value("fairq_task_run_seconds_count", queue=queue, task="gated") == 3


def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("worker", str(TASKS), "-Q", "unused", "-p", "1", "--metrics-port", str(port), *LOCAL,
                       env={"FAIRQ_BROKER_URL": f"sqlite://{tmp_path}/fairq.db"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"fairq: error: --metrics-port {port}: 127.0.0.1:{port} is in use"
    assert "Traceback" not in done.stderr
