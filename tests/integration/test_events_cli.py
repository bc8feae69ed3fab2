"""``fairq events`` against real ``fairq worker`` processes: every process emits its own events, numbered;
``--no-events`` sends none; the text and JSON lines say what happened."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fairq.broker import open_backend
from fairq.events import WorkerOffline
from fairq.events.codec import encode_worker_batch, worker_fields
from tests.support.workers import TASKS, Journal, run_cli, wait_for, worker_process


class EventsProcess:
    """``fairq events ARGS`` with its stdout lines collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "fairq", "events", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors))]
        for reader in self._readers:
            reader.start()
        wait_for(lambda: any("listening on" in e for e in self.errors) or self.process.poll() is not None, 30,
                 what="fairq events to listen")
        assert self.process.poll() is None, "\n".join(self.errors)

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def events_process(*args: str, env: dict[str, str]) -> Iterator[EventsProcess]:
    listener = EventsProcess(list(args), env)
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture(params=["sqlite", "rabbitmq"])
def events_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    url = (f"sqlite://{tmp_path}/fairq.db" if request.param == "sqlite"
           else str(request.getfixturevalue("broker_url")))
    return {"FAIRQ_BROKER_URL": url, "FAIRQ_TEST_JOURNAL": str(tmp_path / "journal.txt")}


def test_each_worker_process_emits_its_own_events_with_its_number(events_env: dict[str, str], tmp_path: Path) -> None:
    name = f"ev-{uuid.uuid4().hex[:8]}"
    queue = f"events.cli.{uuid.uuid4().hex[:8]}"
    journal = Journal(tmp_path / "journal.txt")
    with events_process("--json", env=events_env) as listener:
        with worker_process(str(TASKS), "-Q", queue, "-p", "2", "--name", name, "--heartbeat", "0.3",
                            env=events_env, ready=2):
            mine = lambda: [e for e in listener.json() if e["worker"].startswith(name + ".")]  # noqa: E731
            wait_for(lambda: {e["process"] for e in mine() if e["key"] == "worker.heartbeat"} == {1, 2}, 30,
                     what="heartbeats from both processes")
            sent = run_cli("send", "record", "cli-1", "-Q", queue, env=events_env)
            assert sent.returncode == 0, sent.stderr
            wait_for(lambda: "cli-1" in journal.tags("done"), 30, what="the task")
            wait_for(lambda: any(e["key"] == "task.succeeded" for e in mine()), 30, what="its succeeded event")
        wait_for(lambda: {e["process"] for e in mine() if e["key"] == "worker.offline"} == {1, 2}, 30,
                 what="both processes offline after SIGTERM")
    events = mine()
    online = {e["process"]: e for e in events if e["key"] == "worker.online"}
    assert set(online) == {1, 2}
    for process, event in online.items():
        assert event["worker"] == f"{name}.{process}" and event["node"] == name and event["processes"] == 2
        assert event["queues"] == [queue] and event["slots"] == 1 and event["interval"] == 0.3
    task = [e for e in events if e["key"].startswith("task.")]
    assert [e["key"] for e in task] == ["task.received", "task.started", "task.succeeded"]
    assert {e["worker"] for e in task} < set(e["worker"] for e in online.values())
    assert task[-1]["task"] == "record" and task[-1]["queue"] == queue and task[-1]["run"] >= 0


def test_no_events_sends_none(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/fairq.db"
    env = {"FAIRQ_BROKER_URL": url, "FAIRQ_TEST_JOURNAL": str(tmp_path / "journal.txt")}
    journal = Journal(tmp_path / "journal.txt")
    with events_process("--json", env=env) as listener:
        with worker_process(str(TASKS), "-p", "1", "--no-events", "--name", "quiet", env=env) as worker:
            assert any("events off" in line for line in worker.lines)
            assert run_cli("send", "record", "q-1", "-Q", "default", env=env).returncode == 0
            wait_for(lambda: "q-1" in journal.tags("done"), 30, what="the task")
        # The worker has exited: a marker sent now arrives after anything it could have sent.
        marker = WorkerOffline(kind="offline", worker="marker", process=1, at=float(int(time.time())), host="h", pid=1)

        async def mark() -> None:
            broker = open_backend(url).broker()
            await broker.connect()
            assert broker.publish_event("worker.offline", encode_worker_batch("offline", "marker", 1, 1,
                                                                              [worker_fields(marker)]))
            await broker.close()

        asyncio.run(mark())
        wait_for(lambda: listener.json(), 30, what="the marker")
        assert [e["worker"] for e in listener.json()] == ["marker"]


def test_the_text_lines_say_what_happened(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/fairq.db"
    env = {"FAIRQ_BROKER_URL": url, "FAIRQ_TEST_JOURNAL": str(tmp_path / "journal.txt")}
    with events_process("-k", "task.#", "-n", "7", env=env) as listener:
        with worker_process(str(TASKS), "-p", "1", "--name", "texty", env=env):
            assert run_cli("send", "record", "t-1", "-Q", "default", env=env).returncode == 0
            assert run_cli("send", "explode", "kaboom", "-Q", "default", env=env).returncode == 0
            wait_for(lambda: listener.process.poll() is not None, 30, what="fairq events to exit after 7 events")
    assert listener.process.returncode == 0
    received, started, succeeded = [line for line in listener.lines if "record" in line]
    assert "task.received" in received and "texty/1" in received and "attempt 1" in received
    assert "task.started" in started and "slot 0" in started and "waited" in started
    assert "task.succeeded" in succeeded and "ran" in succeeded
    failed = next(line for line in listener.lines if "task.failed" in line)
    assert "explode" in failed and "ValueError: kaboom" in failed
    dead = next(line for line in listener.lines if "task.dead-lettered" in line)
    assert "task failed" in dead
