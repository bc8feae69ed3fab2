"""The command line as a user meets it: real subprocesses against the real broker."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


COMMANDS = [["send", "record", "x", "-Q", "q", "--timeout", "1"], ["status"], ["send", "--raw", "-Q", "q", "--timeout", "1"],
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


BROKEN_IMPORT = "raise RuntimeError('a bug at import time')\n"


@pytest.mark.parametrize(("task", "why"), [
    ("no_such_module_here.hello", "cannot import 'no_such_module_here': no module named 'no_such_module_here'"),
    ("tasks_module.no_such_task", "module 'tasks_module' has no task 'no_such_task'"),
    ("tasks_module.os", "tasks_module.os is not a fairq task"),
    ("broken_on_import.hello", "importing 'broken_on_import' failed: RuntimeError: a bug at import time"),
    ("hello", "'hello' names no module"),
])
def test_a_task_that_cannot_be_checked_is_refused_unless_its_queue_is_named(
        amqp: Amqp, queue: str, worker_env: dict[str, str], tmp_path: Path, task: str, why: str) -> None:
    (tmp_path / "broken_on_import.py").write_text(BROKEN_IMPORT)
    env = {**worker_env, "PYTHONPATH": f"{TASKS.parent}:{tmp_path}"}
    refused = run_cli("send", task, "1", env=env)
    assert refused.returncode == 1, refused.stdout
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"fairq: error: cannot send {task}: ")
    assert why in lines[0] and "--queue" in lines[0]

    sent = run_cli("send", task, "1", "--queue", queue, env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.splitlines() == [f"fairq: warning: {task} was not checked ({lines[0].split(': ', 3)[3]}"
                                        .split("; to send it unchecked")[0] + f"); sent to {queue} as it is"]
    props, body = amqp.drain(queue)[0]
    assert props.message_id == sent.stdout.strip()
    assert json.loads(body)["task"] == task


def test_a_task_that_imports_goes_to_its_own_queue_without_a_warning(amqp: Amqp, worker_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    queue = f"cli.{free_port()}.{id(tmp_path)}"
    (tmp_path / "queued_tasks.py").write_text(
        f"import fairq\napp = fairq.App()\n@app.task(queue={queue!r})\ndef hello(name: str) -> None: ...\n")
    try:
        sent = run_cli("send", "queued_tasks.hello", "you", env={**worker_env, "PYTHONPATH": str(tmp_path)})
        assert sent.returncode == 0, sent.stderr
        assert sent.stderr == ""
        assert amqp.ready(queue) == 1
    finally:
        amqp.delete(queue)


def test_a_task_found_by_its_import_path_is_sent_under_the_name_workers_know(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    sent = run_cli("send", "tasks_module.record", "x", "-Q", queue, env={**worker_env, "PYTHONPATH": str(TASKS.parent)})
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr == ""
    assert json.loads(amqp.drain(queue)[0][1])["task"] == "record"  # @app.task(name="record")


def test_a_bad_prefetch_policy_is_a_usage_error() -> None:
    result = run_cli("worker", str(TASKS), "--prefetch", "fast")
    assert result.returncode == 2
    assert "--prefetch must be fair, adaptive, unlimited or a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_each_commands_whole_first_line() -> None:
    for args in (["--help"], ["dlq", "--help"]):
        result = run_cli(*args, env={"COLUMNS": "80"})
        assert result.returncode == 0
        assert "..." not in result.stdout.split("Commands:")[1]
    text = " ".join(run_cli("--help", env={"COLUMNS": "80"}).stdout.split())
    assert "Enqueue TASK with ARGs (each parsed as JSON, else a string); prints the message id." in text


def test_status_without_arguments_shows_the_queues_it_can_look_up_over_amqp_and_says_what_it_cannot(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    assert run_cli("send", "record", "x", "-Q", queue, env=worker_env).returncode == 0
    absent = f"{queue}.absent"
    management = f"http://127.0.0.1:{free_port()}"
    result = run_cli("status", "--management-url", management,
                     env={**worker_env, "FAIRQ_QUEUES": f"{queue}, {absent}", "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if queue in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [queue, "1", "0", "0"]
    assert absent not in "".join(line for line in result.stdout.splitlines() if "│" in line)
    hint = result.stdout.strip().splitlines()[-1]
    assert f"the management API ({management}) did not answer" in hint
    assert f"default, {queue}, {absent} were looked up" in hint
    assert absent in hint.split("missing: ")[1]
    assert "MODULE or -Q NAME" in hint


class FakeManagement(BaseHTTPRequestHandler):
    """The management API's /api/queues/%2F, answering with what the test put in ``queues``."""

    queues: list[dict[str, object]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(self.queues if self.path == "/api/queues/%2F" else {}).encode()
        self.send_response(200 if self.path == "/api/queues/%2F" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def management() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeManagement)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_status_without_arguments_shows_every_queue_the_management_api_lists(
        management: str, worker_env: dict[str, str]) -> None:
    FakeManagement.queues = [
        {"name": "images", "messages_ready": 7, "messages_unacknowledged": 2, "consumers": 3, "type": "quorum"},
        {"name": "images.dlq", "messages_ready": 4, "consumers": 0, "type": "quorum"},
        {"name": "emails", "messages_ready": 0, "messages_unacknowledged": 0, "consumers": 1, "type": "classic"},
        {"name": "fairq.delay.03", "messages_ready": 9, "consumers": 0, "type": "classic"},
    ]
    result = run_cli("status", "--management-url", management, env={**worker_env, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in result.stdout.splitlines() if "│" in line]
    assert rows == [["emails", "classic", "0", "0", "1", "0"], ["images", "quorum", "7", "2", "3", "4"]]
    assert result.stdout.strip().splitlines()[-1] == (
        "every queue the broker lists; narrow it with MODULE (its tasks' queues) or -Q NAME")
