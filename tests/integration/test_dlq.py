"""``fairq dlq list|replay|purge``: real dead letters, real CLI processes, the shared broker."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pika
import pytest
from helpers import TASKS, Amqp, Journal, run_cli, wait_for, worker_process

from fairq import message as wire
from fairq.broker.topology import dead_letter_queue
from fairq.broker import BrokerDeath
from fairq.broker.rabbitmq import death_of
from fairq.deadletters import describe, revived
from fairq.message import Envelope

# A task that fails for good on its first attempt, whatever the default retries are.
BROKEN_TASKS = '''
import fairq

app = fairq.App()


@app.task(name="record", max_retries=0)
def record(tag: str, seconds: float = 0.0) -> None:
    raise RuntimeError(f"bug while recording {tag}")
'''

DEATH_HEADERS = {"fairq-dead-reason", "fairq-error-type", "fairq-error-message", "fairq-traceback",
                 "fairq-attempts", "fairq-worker", "fairq-queue", "fairq-dead-at"}
WIDE = {"COLUMNS": "400"}  # rich wraps table cells to the terminal width; keep every cell on one line


@pytest.fixture
def broken_tasks(tmp_path: Path) -> Path:
    path = tmp_path / "broken_tasks.py"
    path.write_text(BROKEN_TASKS)
    return path


def declare(amqp: Amqp, queue: str, kind: str = "quorum") -> None:
    """QUEUE and QUEUE.dlq as fairq creates them."""
    channel = amqp._fresh()
    channel.queue_declare(queue, durable=True, arguments={
        "x-queue-type": kind, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letter_queue(queue)})
    channel.queue_declare(dead_letter_queue(queue), durable=True, arguments={"x-queue-type": kind})


def bury(amqp: Amqp, queue: str, tag: str, headers: dict[str, Any] | None = None) -> str:
    """Put a dead ``record(tag)`` in QUEUE.dlq as a worker would leave it (plus ``headers``); returns its id."""
    message_id = uuid.uuid4().hex
    body = json.dumps({"task": "record", "args": [tag], "kwargs": {}}).encode()
    amqp._fresh().basic_publish("", dead_letter_queue(queue), body, pika.BasicProperties(
        delivery_mode=2, content_type="application/json", message_id=message_id, headers={
            "fairq-protocol": 1, "fairq-task": "record", "fairq-attempt": 2,
            "fairq-dead-reason": "task failed", "fairq-error-type": "RuntimeError",
            "fairq-error-message": f"bug while recording {tag}", "fairq-traceback": "Traceback ...",
            "fairq-attempts": 3, "fairq-worker": "host.123", "fairq-queue": queue,
            "fairq-dead-at": "2024-05-01T12:00:00.000+00:00", **(headers or {})}))
    return message_id


def broker_death(queue: str, reason: str) -> dict[str, Any]:
    """The headers RabbitMQ itself adds when it dead-letters a message from ``queue``."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return {
        "x-death": [{"reason": reason, "queue": queue, "count": 1, "time": now, "exchange": "",
                     "routing-keys": [queue]}],
        "x-first-death-reason": reason, "x-first-death-queue": queue, "x-first-death-exchange": "",
        "x-last-death-reason": reason, "x-last-death-queue": queue, "x-last-death-exchange": "",
        "x-delivery-count": 20,
    }


def listed(queue: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = run_cli("dlq", "list", queue, "--json", env=env)
    assert result.returncode == 0, result.stderr
    letters: list[dict[str, Any]] = json.loads(result.stdout)
    return letters


def ready(amqp: Amqp, queue: str, count: int) -> None:
    """Wait until QUEUE.dlq holds ``count``: publishes without confirms reach a quorum queue a moment later."""
    wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == count, what=f"{count} dead letters")


def ids_in(amqp: Amqp, queue: str) -> list[str]:
    return [props.message_id for props, _ in amqp.drain(queue)]


def peek(amqp: Amqp, queue: str) -> list[tuple[Any, bytes]]:
    """Every ready message of ``queue``, handed back afterwards."""
    channel = amqp._fresh()
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        out.append((props, body))
    if out:
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
    return out


def test_list_shows_each_reason_and_leaves_every_dead_letter_in_place(
        amqp: Amqp, queue: str, broken_tasks: Path, worker_env: dict[str, str]) -> None:
    dlq = dead_letter_queue(queue)
    with worker_process(str(broken_tasks), "-Q", queue, "-p", "1", env=worker_env):
        amqp.publish(queue, b"\xff\xfe not json", {"fairq-protocol": 1}, "application/json")
        amqp.publish_task(queue, "no.such.task", [1])
        amqp.publish_task(queue, "record", ["x"])
        amqp.publish(queue, b"Hello World!")
        wait_for(lambda: amqp.ready(dlq) == 4, what="four dead letters")

    letters = listed(queue, worker_env)
    assert amqp.ready(dlq) == 4  # list returns only once every dead letter is back
    by_reason = {d["reason"]: d for d in letters}
    assert sorted(by_reason) == sorted(["not JSON", "unknown task", "task failed", "not a fairq message"])
    failed = by_reason["task failed"]
    assert (failed["task"], failed["error_type"], failed["error_message"]) == ("record", "RuntimeError",
                                                                               "bug while recording x")
    assert failed["attempts"] == 1
    assert failed["worker"] and failed["dead_at"] and failed["message_id"]
    assert by_reason["unknown task"]["task"] == "no.such.task"
    assert "no.such.task" in by_reason["unknown task"]["error_message"]
    assert by_reason["not a fairq message"]["task"] == "(plain)"
    assert by_reason["not a fairq message"]["size"] == len(b"Hello World!")

    table = run_cli("dlq", "list", queue, env={**worker_env, **WIDE})
    assert table.returncode == 0, table.stderr
    for reason in by_reason:
        assert reason in table.stdout
    assert "RuntimeError: bug while recording x" in table.stdout

    again = listed(queue, worker_env)
    assert [d["message_id"] for d in again] == [d["message_id"] for d in letters]  # same order, nothing consumed
    assert ids_in(amqp, dlq) == [d["message_id"] for d in letters]


def test_replay_puts_failed_tasks_back_fresh_and_a_fixed_worker_runs_them(
        amqp: Amqp, queue: str, journal: Journal, broken_tasks: Path, worker_env: dict[str, str]) -> None:
    dlq = dead_letter_queue(queue)
    with worker_process(str(broken_tasks), "-Q", queue, "-p", "1", env=worker_env):
        amqp.publish_task(queue, "record", ["a"])
        amqp.publish_task(queue, "record", ["b"])
        wait_for(lambda: amqp.ready(dlq) == 2, what="two failed tasks")
    bury(amqp, queue, "c", broker_death(queue, "rejected"))  # also dead-lettered once by the broker itself
    ready(amqp, queue, 3)
    before = peek(amqp, dlq)
    assert len(before) == 3

    result = run_cli("dlq", "replay", queue, env=worker_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replayed 3 dead letters to {queue}"
    assert amqp.ready(dlq) == 0
    after = peek(amqp, queue)
    assert [(p.message_id, body) for p, body in after] == [(p.message_id, body) for p, body in before]
    for props, _ in after:
        assert props.headers["fairq-attempt"] == 0
        assert props.headers["fairq-task"] == "record"
        assert not set(props.headers) & DEATH_HEADERS
        # No x-death (RabbitMQ could take it for a dead-letter cycle); a quorum queue's own count starts at 0.
        assert {h for h in props.headers if h.startswith("x-")} <= {"x-delivery-count"}
        assert props.headers.get("x-delivery-count", 0) == 0

    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        wait_for(lambda: sorted(journal.tags("done")) == ["a", "b", "c"], what="the replayed tasks to run")
    assert amqp.ready(dlq) == 0 and amqp.ready(queue) == 0


def test_a_replayed_delivery_limit_dead_letter_runs_on_a_classic_queue(
        amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    # A classic queue keeps whatever x-delivery-count a message carries: a kept count of 20 would have
    # the worker dead-letter the copy again at once for its delivery limit (5 in tasks_module).
    declare(amqp, queue, "classic")
    bury(amqp, queue, "again", {"fairq-dead-reason": "delivery limit", "x-delivery-count": 20,
                                "fairq-redeliveries": 4})
    ready(amqp, queue, 1)
    result = run_cli("dlq", "replay", queue, env=worker_env)
    assert result.returncode == 0, result.stderr
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        wait_for(lambda: journal.tags("done") == ["again"], what="the replayed task to run")
    assert amqp.ready(dead_letter_queue(queue)) == 0


def test_replay_by_id_moves_exactly_that_one_and_limit_caps_the_count(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    first, second, third, fourth = (bury(amqp, queue, tag) for tag in "abcd")
    ready(amqp, queue, 4)

    by_id = run_cli("dlq", "replay", queue, "--id", second, env=worker_env)
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.strip() == f"replayed 1 dead letter to {queue}"
    assert [d["message_id"] for d in listed(queue, worker_env)] == [first, third, fourth]

    missing = run_cli("dlq", "replay", queue, "--id", "no-such-id", env=worker_env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"fairq: error: no dead letter with id no-such-id in {dead_letter_queue(queue)}"

    limited = run_cli("dlq", "replay", queue, "--limit", "2", env=worker_env)
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.strip() == f"replayed 2 dead letters to {queue}"
    assert ids_in(amqp, queue) == [second, first, third]
    assert ids_in(amqp, dead_letter_queue(queue)) == [fourth]


def test_list_keeps_the_order_of_more_dead_letters_than_a_quorum_queue_returns_in_order_at_once(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    buried = [bury(amqp, queue, str(n)) for n in range(80)]
    ready(amqp, queue, 80)
    for _ in range(2):
        assert [d["message_id"] for d in listed(queue, worker_env)] == buried
    assert ids_in(amqp, dead_letter_queue(queue)) == buried


def test_purge_needs_yes_without_a_terminal_then_deletes_all_and_counts_them(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    for tag in "abc":
        bury(amqp, queue, tag)
    ready(amqp, queue, 3)
    dlq = dead_letter_queue(queue)

    refused = subprocess.run([sys.executable, "-m", "fairq", "dlq", "purge", queue], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, env={**worker_env}, timeout=60)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert amqp.ready(dlq) == 3

    purged = run_cli("dlq", "purge", queue, "--yes", env=worker_env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == f"purged 3 dead letters from {dlq}"
    assert amqp.ready(dlq) == 0
    empty = run_cli("dlq", "list", queue, env=worker_env)
    assert (empty.returncode, empty.stdout) == (0, "")  # through a pipe, stdout holds dead letters only
    assert empty.stderr.strip() == f"no dead letters in {dlq}"


def test_a_quorum_delivery_limit_dead_letter_shows_the_brokers_reason(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    dlq = dead_letter_queue(queue)
    death = broker_death(queue, "delivery_limit")
    amqp.publish_task(dlq, "record", ["crasher"], headers=death)  # no fairq-dead-reason: the broker gave up on it
    amqp.publish(dlq, b"plain", {"x-first-death-reason": "expired"})
    ready(amqp, queue, 2)

    letters = listed(queue, worker_env)
    assert [(d["task"], d["reason"]) for d in letters] == [("record", "delivery limit"), ("(plain)", "expired")]
    assert letters[0]["dead_at"] == death["x-death"][0]["time"].isoformat()
    table = run_cli("dlq", "list", queue, env={**worker_env, **WIDE})
    assert "delivery limit" in table.stdout and "delivery_limit" not in table.stdout


@pytest.mark.parametrize("command", [["list"], ["replay"], ["purge", "--yes"]])
def test_a_queue_without_a_dead_letter_queue_is_one_line_and_exit_1(
        queue: str, worker_env: dict[str, str], command: list[str]) -> None:
    result = run_cli("dlq", *command, queue, env=worker_env)
    assert result.returncode == 1
    dlq = dead_letter_queue(queue)
    assert result.stderr.strip() == f"fairq: error: {queue} has no dead-letter queue ({dlq} does not exist)"


def test_the_newest_broker_death_wins_and_a_replayed_copy_keeps_only_what_a_send_had() -> None:
    # A retried task passed a delay level (expired) before its queue's delivery limit dead-lettered it.
    headers = {wire.H_PROTOCOL: 1, wire.H_TASK: "record", wire.H_ATTEMPT: 3, "custom": "kept",
               "x-death": [{"reason": "delivery_limit", "queue": "q", "count": 1},
                           {"reason": "expired", "queue": "fairq.delay.03", "count": 2}],
               "x-first-death-reason": "expired", "x-delivery-count": 20, wire.H_REDELIVERIES: 4}
    envelope = Envelope(body=b'{"task": "record"}', headers=headers, message_id="m1", content_type="application/json")
    assert death_of(envelope.headers) == BrokerDeath("delivery limit", "q")  # the RabbitMQ backend reads x-death
    assert describe(envelope, death_of(envelope.headers)).reason == "delivery limit"
    assert describe(envelope).reason == "(unknown)"  # describe itself never reads x- headers
    copy = revived(envelope)
    assert copy.headers == {wire.H_PROTOCOL: 1, wire.H_TASK: "record", wire.H_ATTEMPT: 0, "custom": "kept"}
    assert (copy.body, copy.message_id, copy.content_type) == (envelope.body, "m1", "application/json")
    assert envelope.headers["x-delivery-count"] == 20  # the dead letter itself is left untouched
    plain = revived(Envelope(body=b"hi", headers={wire.H_REASON: "not a fairq message"}))
    assert plain.headers == {}  # a plain message gets no fairq-attempt


def test_show_prints_one_dead_letter_whole_and_list_json_carries_the_same_fields(
        amqp: Amqp, queue: str, broken_tasks: Path, worker_env: dict[str, str]) -> None:
    dlq = dead_letter_queue(queue)
    for tag in ("first", "second"):
        sent = run_cli("send", "record", tag, "--kwargs", '{"seconds": 0.5}', "-Q", queue, env=worker_env)
        assert sent.returncode == 0, sent.stderr
    with worker_process(str(broken_tasks), "-Q", queue, "-p", "1", env=worker_env):
        wait_for(lambda: amqp.ready(dlq) == 2, what="two failed tasks")
    letters = listed(queue, worker_env)
    first, second = letters
    assert (first["args"], first["kwargs"]) == (["first"], {"seconds": 0.5})
    assert "raise RuntimeError" in first["traceback"] and first["traceback"].startswith("Traceback")
    assert first["sent_at"] and first["dead_at"] and first["queue"] == queue and first["body"] is None

    oldest = run_cli("dlq", "show", queue, env=worker_env)
    assert oldest.returncode == 0, oldest.stderr
    fields = dict(line.split(None, 1) if " " in line else (line, "") for line in oldest.stdout.splitlines()
                  if line and not line.startswith(" ") and not line.endswith(":"))
    assert fields["task"] == "record"
    assert fields["args"] == '["first"]' and fields["kwargs"] == '{"seconds": 0.5}'
    assert fields["reason"] == "task failed"
    assert fields["error"] == "RuntimeError: bug while recording first"
    assert fields["attempts"] == "1" and fields["worker"] == first["worker"]
    for label in ("message id", "sent at", "dead at"):
        assert f"{label}  " in oldest.stdout
    assert first["message_id"] in oldest.stdout and first["sent_at"] in oldest.stdout
    assert "\ntraceback:\n  Traceback (most recent call last):" in oldest.stdout
    assert "    raise RuntimeError" in oldest.stdout

    by_id = run_cli("dlq", "show", queue, "--id", second["message_id"], "--json", env=worker_env)
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout) == second
    missing = run_cli("dlq", "show", queue, "--id", "no-such-id", env=worker_env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"fairq: error: no dead letter with id no-such-id in {dlq}"
    assert ids_in(amqp, dlq) == [first["message_id"], second["message_id"]]  # show moved nothing


def test_piped_list_is_one_plain_line_per_dead_letter_with_the_whole_id_first(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    buried = [bury(amqp, queue, tag) for tag in ("a", "b\twith a tab")]
    ready(amqp, queue, 2)
    result = run_cli("dlq", "list", queue, env=worker_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == buried
    assert [line.split("\t")[1:4] for line in lines] == [
        ["record", "task failed", "RuntimeError: bug while recording a"],
        ["record", "task failed", "RuntimeError: bug while recording b with a tab"]]
    assert "┃" not in result.stdout and "│" not in result.stdout


def in_a_terminal(args: list[str], env: dict[str, str], columns: int) -> str:
    """Run ``fairq ARGS`` with its stdout on a pseudo-terminal ``columns`` wide; returns what it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "fairq", *args], stdout=follower, stderr=subprocess.PIPE,
                               env={**os.environ, **env, "COLUMNS": str(columns), "TERM": "dumb"})
    os.close(follower)
    out = b""
    while True:
        ready_to_read, _, _ = select.select([leader], [], [], 60)
        assert ready_to_read, "no output within 60 s"
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert process.stderr is not None
    with process.stderr:
        errors = process.stderr.read().decode()
    assert process.wait(60) == 0, errors
    return out.decode()


def test_at_80_columns_the_table_keeps_the_whole_id_and_drops_other_columns(
        amqp: Amqp, queue: str, worker_env: dict[str, str]) -> None:
    declare(amqp, queue)
    buried = [bury(amqp, queue, "a long tag that makes the error message wrap " * 2) for _ in range(2)]
    ready(amqp, queue, 2)
    text = in_a_terminal(["dlq", "list", queue], worker_env, 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    for message_id in buried:
        assert any(message_id in line for line in lines), text
    header = next(line for line in lines if "message id" in line)
    assert "task" in header and "reason" in header and "error" in header
    assert "bytes" not in header and "worker" not in header
