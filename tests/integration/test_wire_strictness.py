"""What protocol.md says a body and its version header must be, a worker holds other producers to."""

from __future__ import annotations

import json

from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq.broker.topology import dead_letter_queue

VALID = json.dumps({"task": "record", "args": ["ran"]})


def test_other_encodings_non_numbers_and_a_boolean_version_are_dead_lettered_not_run(
        amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    bad = [
        (VALID.encode("utf-16"), {"fairq-protocol": 1}, "not JSON", "not UTF-8"),
        (VALID.encode("utf-32"), {"fairq-protocol": 1}, "not JSON", "not UTF-8"),
        (b'{"task": "record", "args": [NaN]}', {"fairq-protocol": 1}, "bad task message", "NaN"),
        (b'{"task": "record", "args": [1e999]}', {"fairq-protocol": 1}, "bad task message", "1e999"),
        (VALID.encode(), {"fairq-protocol": True}, "bad task message", "protocol version True"),
    ]
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        for body, headers, _, _ in bad:
            amqp.publish(queue, body, headers, "application/json")
        amqp.publish(queue, json.dumps({"task": "record", "args": ["last"]}).encode("utf-8-sig"),
                     {"fairq-protocol": 1}, "application/json")  # a UTF-8 byte order mark is still UTF-8
        wait_for(lambda: "last" in journal.tags("done"), what="the valid task")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == len(bad), what="the dead letters")
    assert journal.tags("start") == ["last"]
    dead = amqp.drain(dead_letter_queue(queue))
    assert [body for _, body in dead] == [body for body, _, _, _ in bad]  # bodies unchanged
    for (props, _), (_, _, reason, detail) in zip(dead, bad):
        assert props.headers["fairq-dead-reason"] == reason
        assert detail in props.headers["fairq-error-message"]
