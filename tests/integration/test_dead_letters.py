"""Messages that cannot be tasks land in QUEUE.dlq with their reason; the worker keeps going."""

from __future__ import annotations

from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq.broker.topology import dead_letter_queue


def test_each_bad_message_is_dead_lettered_with_its_reason_and_the_next_task_runs(
        amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        amqp.publish(queue, b"\xff\xfe not json", {"fairq-protocol": 1}, "application/json")
        amqp.publish_task(queue, "no.such.task", [1])
        amqp.publish_task(queue, "add", [1, 2, 3])
        amqp.publish(queue, b"Hello World!")
        amqp.publish_task(queue, "explode", ["boom"])
        amqp.publish_task(queue, "record", ["after-the-bad-ones"])
        wait_for(lambda: "after-the-bad-ones" in journal.tags("done"), what="the valid task")
        dlq = dead_letter_queue(queue)
        wait_for(lambda: amqp.ready(dlq) == 5, what="five dead letters")
        assert worker.process.poll() is None
    dead = amqp.drain(dlq)
    reasons = [props.headers["fairq-dead-reason"] for props, _ in dead]
    assert sorted(reasons) == sorted(["not JSON", "unknown task", "wrong arguments", "not a fairq message", "task failed"])
    by_reason = {props.headers["fairq-dead-reason"]: (props, body) for props, body in dead}
    assert by_reason["not a fairq message"][1] == b"Hello World!"  # the body is kept as sent
    assert "no.such.task" in by_reason["unknown task"][0].headers["fairq-error-message"]
    assert by_reason["unknown task"][0].headers["fairq-error-type"] == "fairq.errors.TaskNotFound"
    assert "3 positional arguments" in by_reason["wrong arguments"][0].headers["fairq-error-message"] or \
        "too many" in by_reason["wrong arguments"][0].headers["fairq-error-message"]
    failed = by_reason["task failed"][0].headers
    assert failed["fairq-error-type"] == "ValueError"
    assert failed["fairq-error-message"] == "boom"
    assert "raise ValueError(message)" in failed["fairq-traceback"]
    assert failed["fairq-attempts"] == 1
    assert failed["fairq-queue"] == queue
    assert failed["fairq-worker"]
    assert amqp.ready(queue) == 0
