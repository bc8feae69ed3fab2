"""The article's programs (examples/seed) and fairq's, sharing RabbitMQ queues both ways.

The article's experiment itself (six tasks, three single-slot workers) runs on every backend in
tests/delivery/test_fairness.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TASKS, Amqp, Journal, run_cli, wait_for, worker_process

from fairq.broker.topology import dead_letter_queue

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
FAST = {"FAIRQ_DOT_SECONDS": "0.1"}


def received(output: str) -> list[str]:
    return re.findall(r" \[x\] Received '([^']*)'", output)


@pytest.fixture
def task_queue(amqp: Amqp) -> Iterator[str]:
    """The article's own queue name, emptied before and removed after."""
    amqp.delete("task_queue", dead_letter_queue("task_queue"))
    yield "task_queue"
    amqp.delete("task_queue", dead_letter_queue("task_queue"))


def run_seed(program: str, *args: str, broker_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SEED / program), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "FAIRQ_BROKER_URL": broker_url})


def test_the_articles_task_py_feeds_fairq_workers(amqp: Amqp, task_queue: str, broker_url: str) -> None:
    first = run_seed("task.py", "First", "message.", broker_url=broker_url)  # declares task_queue the article's way
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip() == " [x] Sent 'First message.'"
    with worker_process("-Q", task_queue, "--raw-handler", "fairq.demo:dots", "-p", "1",
                        env={**FAST, "FAIRQ_BROKER_URL": broker_url}) as worker:
        assert run_seed("task.py", "Second", "message..", broker_url=broker_url).returncode == 0
        wait_for(lambda: worker.count(" [x] Done") == 2, what="both messages")
        assert received(worker.output()) == ["First message.", "Second message.."]
        assert "PRECONDITION_FAILED" not in worker.output()
    assert amqp.ready(task_queue) == 0


def test_fairq_send_raw_feeds_the_articles_worker_py(amqp: Amqp, task_queue: str, broker_url: str) -> None:
    sent = run_cli("send", "--raw", "-Q", task_queue, "Hello", "there...", env={"FAIRQ_BROKER_URL": broker_url})
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.rstrip() == " [x] Sent 'Hello there...'"
    lines: list[str] = []
    proc = subprocess.Popen([sys.executable, str(SEED / "worker.py")], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **FAST, "FAIRQ_BROKER_URL": broker_url})
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in proc.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: " [x] Done" in lines, what="worker.py to finish the message")
        assert run_cli("send", "--raw", "-Q", task_queue, env={"FAIRQ_BROKER_URL": broker_url}).returncode == 0
        wait_for(lambda: lines.count(" [x] Done") == 2, what="the default message")
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()
    assert [line for line in lines if "Received" in line] == [" [x] Received 'Hello there...'",
                                                              " [x] Received 'Hello World!'"]


def test_fairq_tasks_run_on_a_queue_that_exists_as_classic(amqp: Amqp, task_queue: str, broker_url: str,
                                                           journal: Journal, worker_env: dict[str, str]) -> None:
    assert run_seed("task.py", "plain.", broker_url=broker_url).returncode == 0
    sent = run_cli("send", "record", "from-cli", "-Q", task_queue, env=worker_env)
    assert sent.returncode == 0, sent.stderr
    with worker_process(str(TASKS), "-Q", task_queue, "--raw-handler", "fairq.demo:dots", "-p", "1",
                        env={**worker_env, **FAST}) as worker:
        wait_for(lambda: journal.tags("done") == ["from-cli"] and worker.count(" [x] Done") == 1,
                 what="the task and the plain message")
    assert amqp.ready(task_queue) == 0
