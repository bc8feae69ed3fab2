"""The command line as a user meets it: real subprocesses against the real broker."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from helpers import TASKS, Amqp, Journal, run_cli, wait_for, worker_process

SECRET = "s3cret-Pa55"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrong_password_url(broker_url: str) -> str:
    parts = urlsplit(broker_url)
    return f"amqp://guest:{SECRET}@{parts.hostname}:{parts.port or 5672}/"


COMMANDS = [["send", "record", "x", "--timeout", "1"], ["status"], ["send", "--raw", "-Q", "q", "--timeout", "1"],
            ["demo"]]


# A worker waits for a broker that is down instead (tests/faults/test_outages.py).
@pytest.mark.parametrize(("command", "where"), [
    *((c, w) for c in COMMANDS for w in ("wrong password", "nothing listening")),
    (["worker", str(TASKS), "-p", "1"], "wrong password"),
])
def test_broker_errors_are_one_line_without_the_password(broker_url: str, command: list[str], where: str) -> None:
    url = wrong_password_url(broker_url) if where == "wrong password" else f"amqp://guest:{SECRET}@127.0.0.1:{free_port()}/"
    result = run_cli(*command, "-b", url, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fairq: error: ")
    assert ("refused the login" if where == "wrong password" else "cannot reach") in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--kwargs", "{not json"], ["--kwargs", "[1, 2]"], ["--count", "0"]])
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    result = run_cli("send", "record", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Error:" in result.stderr


def test_arguments_that_the_task_cannot_take_are_refused_before_sending(amqp: Amqp, queue: str,
                                                                       worker_env: dict[str, str]) -> None:
    result = run_cli("send", "tasks_module.add", "1", "-Q", queue, env={**worker_env, "PYTHONPATH": str(TASKS.parent)})
    assert result.returncode == 1
    assert result.stderr.startswith("fairq: error: cannot send tasks_module.add:")
    assert not amqp.exists(queue)


def test_send_parses_json_arguments_and_a_worker_runs_the_task(amqp: Amqp, queue: str, journal: Journal,
                                                             worker_env: dict[str, str]) -> None:
    result = run_cli("send", "record", "hello world", "0.01", "-Q", queue, env=worker_env)
    assert result.returncode == 0, result.stderr
    message_id = result.stdout.strip()
    assert len(message_id) == 32
    props, body = amqp.drain(queue)[0]
    assert json.loads(body) == {"task": "record", "args": ["hello world", 0.01], "kwargs": {}}
    assert props.message_id == message_id
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.headers["fairq-protocol"] == 1
    counted = run_cli("send", "record", "--kwargs", '{"tag": "many"}', "--count", "50", "-Q", queue, env=worker_env)
    assert counted.returncode == 0, counted.stderr
    assert "sent 50" in counted.stdout
    assert amqp.ready(queue) == 50
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        wait_for(lambda: journal.tags("done").count("many") == 50, what="fifty tasks")


def test_status_shows_ready_consumers_and_dead_letters(amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    for _ in range(3):
        assert run_cli("send", "record", "x", "-Q", queue, env=worker_env).returncode == 0
    result = run_cli("status", "-Q", queue, "--management-url", f"http://127.0.0.1:{free_port()}", env=worker_env)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if queue in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][1:] == ["3", "0", "0"]
