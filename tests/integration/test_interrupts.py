"""Ctrl-C (SIGINT) on every command, at the moments it waits: exit 130, at most one line, no asyncio dump.

Real `fairq` subprocesses, against a port where nothing listens, a "broker" that accepts
and never answers, and the real broker mid-work.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq.broker.topology import dead_letter_queue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Silent:
    """A TCP server that accepts connections and never says a word: a broker (or API) that hangs."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fairq", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT once; assert exit 130 with at most one line on stderr and no asyncio dump; returns (stdout, stderr)."""
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert len(err.splitlines()) <= 1, err
    assert err in ("", "fairq: interrupted\n"), err
    assert "Task was destroyed" not in out + err and "Traceback" not in out + err
    return out, err


def test_ctrl_c_on_send_while_the_broker_is_down() -> None:
    process = start("send", "record", "x", "-Q", "q", "-b", f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    # The producer's loop thread is up: send is waiting for the broker (for up to --timeout, 30 s).
    wait_for(lambda: process.poll() is not None or threads(process.pid) >= 2, what="send to wait for the broker")
    interrupt(process)


@pytest.mark.parametrize("command", [
    ["send", "record", "x", "-Q", "q"],
    ["send", "record", "x", "-Q", "q", "--count", "10"],
    ["status", "-Q", "q"],
    ["dlq", "list", "q"],
    ["dlq", "show", "q"],
    ["dlq", "replay", "q"],
    ["dlq", "purge", "q", "--yes"],
    ["worker", str(TASKS), "-p", "1"],
])
def test_ctrl_c_while_a_command_waits_for_a_broker_that_does_not_answer(silent: Silent, command: list[str]) -> None:
    no_api = ["--management-url", f"http://127.0.0.1:{free_port()}"] if command[0] == "status" else []
    process = start(*command, *no_api, "-b", f"amqp://guest:guest@127.0.0.1:{silent.port}/")
    wait_for(lambda: silent.accepted or process.poll() is not None, what="the command to connect")
    interrupt(process)


def test_ctrl_c_while_status_waits_for_a_management_api_that_does_not_answer(silent: Silent, broker_url: str) -> None:
    process = start("status", "-b", broker_url, "--management-url", f"http://127.0.0.1:{silent.port}")
    wait_for(lambda: silent.accepted or process.poll() is not None, what="status to ask the management API")
    interrupt(process)


def test_ctrl_c_in_the_middle_of_a_batch_send_to_the_real_broker(amqp: Amqp, queue: str, broker_url: str) -> None:
    process = start("send", "record", "x", "-Q", queue, "--count", "500000", "-b", broker_url)
    wait_for(lambda: process.poll() is not None or (amqp.exists(queue) and amqp.ready(queue) > 0), timeout=30,
             what="the first messages to arrive")
    interrupt(process)


def test_ctrl_c_during_the_demo_on_the_real_broker(broker_url: str, tmp_path: Path) -> None:
    process = start("demo", "--chart", str(tmp_path / "chart.png"), "-b", broker_url)
    assert process.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    wait_for(lambda: any("Received" in line for line in seen) or process.poll() is not None, timeout=30,
             what="the demo's workers to start")
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 130
    reader.join(10)
    assert process.stderr is not None
    with process.stderr, process.stdout:
        err = process.stderr.read()
    assert err == "fairq: interrupted\n"


def test_a_worker_aborted_by_a_second_ctrl_c_exits_130_and_its_task_goes_back(
        amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # never opened: the task runs until the abort
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        amqp.publish_task(queue, "gated", ["held", str(gate)])
        wait_for(lambda: journal.tags("start") == ["held"], what="the task to start")
        worker.signal(signal.SIGINT)
        wait_for(lambda: worker.count("stopping gracefully") == 1, what="the graceful stop to begin")
        worker.signal(signal.SIGINT)
        assert worker.process.wait(timeout=30) == 130
    wait_for(lambda: amqp.ready(queue) == 1, what="the unfinished task back in the queue")
    assert journal.tags("done") == []
    assert amqp.ready(dead_letter_queue(queue)) == 0


def test_a_worker_stopped_by_one_ctrl_c_finishes_its_task_and_exits_0(
        amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        amqp.publish_task(queue, "gated", ["held", str(gate)])
        wait_for(lambda: journal.tags("start") == ["held"], what="the task to start")
        worker.signal(signal.SIGINT)
        wait_for(lambda: worker.count("stopping gracefully") == 1, what="the graceful stop to begin")
        gate.touch()
        assert worker.process.wait(timeout=30) == 0
    assert journal.tags("done") == ["held"]


def sleeping(pid: int) -> bool:
    """Whether the process is asleep (state S in /proc/PID/stat), e.g. blocked reading its terminal."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "S"


def test_ctrl_c_at_the_purge_prompt_exits_130_and_deletes_nothing(amqp: Amqp, queue: str, broker_url: str) -> None:
    dlq = dead_letter_queue(queue)
    amqp._fresh().queue_declare(dlq, durable=True)
    amqp.publish(dlq, b"dead")
    wait_for(lambda: amqp.ready(dlq) == 1, what="one dead letter")
    leader, follower = pty.openpty()  # purge asks only on a terminal
    process = subprocess.Popen([sys.executable, "-m", "fairq", "dlq", "purge", queue, "-b", broker_url],
                               stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)

    def read_until(end: str) -> str:
        text = ""
        while not text.endswith(end):
            ready_to_read, _, _ = select.select([leader], [], [], 30)
            assert ready_to_read, text
            try:
                text += os.read(leader, 4096).decode()
            except OSError:  # EIO: the process closed the terminal
                break
        return text

    try:
        prompt = read_until("[y/N]: ")
        assert f"delete 1 dead letter from {dlq} for good?" in prompt
        # The prompt is written before input() blocks in read(2); a SIGINT in between only sets Python's
        # flag and the read then waits for ever (as it would for a person pressing Ctrl-C in that
        # microsecond). A person is slower: wait until the process sleeps in its read.
        wait_for(lambda: sleeping(process.pid), interval=0.01, what="the prompt waiting for an answer")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
        after = read_until("interrupted\r\n")
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert after.replace("\r", "").lstrip("\n") == "fairq: interrupted\n"  # the prompt's line ended, then one line
    assert amqp.ready(dlq) == 1
