"""10,000 hostile messages among 1,000 valid tasks: every hostile one dead-lettered with a reason."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pika
import pytest

from fairq import App, Call
from fairq.broker.topology import dead_letter_queue
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.reliability import Inspector, Outcome, counts, record
from tests.support.workers import TASKS, Journal, wait_for, worker_process

pytestmark = pytest.mark.faults
QUEUE = "hostile"
HOSTILE = 10_000
VALID = 1_000


def hostile_messages(rng: random.Random) -> list[tuple[bytes, pika.BasicProperties]]:
    """Random bytes, random JSON, wrong headers, other encodings, non-numbers, huge bodies, bad content types."""

    def fairq_props(**headers: object) -> pika.BasicProperties:
        return pika.BasicProperties(delivery_mode=2, message_id=uuid.uuid4().hex, content_type="application/json",
                                    headers={"fairq-protocol": 1, **headers})

    def random_json() -> object:
        return rng.choice([None, rng.random(), rng.randint(-9, 9), "text", [1, "x"], {"k": [None]},
                           {"task": rng.randint(0, 5)}, {"task": "record", "args": "not a list"},
                           {"task": "record", "kwargs": [1]}, {"task": "", "args": []},
                           {"task": "record", "args": [1, 2, 3, 4, 5]}, {"task": "no.such.task"}])

    makers = [
        lambda: (rng.randbytes(rng.randint(0, 300)), pika.BasicProperties(delivery_mode=2)),
        lambda: (rng.randbytes(rng.randint(1, 300)), fairq_props()),
        lambda: (json.dumps(random_json()).encode(), fairq_props()),
        lambda: (json.dumps({"task": "record", "args": ["x"]}).encode(),
                 fairq_props(**{"fairq-protocol": rng.choice([2, "1", None, -1, [1], True])})),
        lambda: (json.dumps({"task": "record", "args": ["x"]}).encode(rng.choice(["utf-16", "utf-16-be", "utf-32"])),
                 fairq_props()),
        lambda: (b'{"task": "record", "args": [' + rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]) + b"]}",
                 fairq_props()),
        lambda: (json.dumps({"task": "record", "args": ["x", "y", "z"]}).encode(),
                 fairq_props(**{"fairq-attempt": "many", "fairq-redeliveries": [1]})),
        lambda: (b"<xml>not a task</xml>", pika.BasicProperties(delivery_mode=2, content_type="text/xml",
                                                                 headers={"fairq-protocol": 1})),
    ]
    messages = [rng.choice(makers)() for _ in range(HOSTILE - 10)]
    huge = json.dumps({"task": "record", "args": ["x" * (2 * 1024 * 1024)]}).encode()
    messages += [(huge, fairq_props()) for _ in range(10)]  # over the 1 MiB limit
    rng.shuffle(messages)
    return messages


def test_hostile_messages_are_dead_lettered_and_valid_tasks_all_run(private_rabbit: PrivateRabbitNode,
                                                                    tmp_path: Path) -> None:
    rng = random.Random(20261126)
    journal = Journal(tmp_path / "journal")
    tags = [f"v{i}" for i in range(VALID)]
    app = App(broker=private_rabbit.url)
    app.send_many("record", [], queue=QUEUE)  # declares the queue as fairq does
    connection = pika.BlockingConnection(pika.URLParameters(private_rabbit.url))
    channel = connection.channel()
    channel.confirm_delivery()
    hostile = hostile_messages(rng)
    valid = iter(tags)
    for i, (body, props) in enumerate(hostile):
        channel.basic_publish("", QUEUE, body, props)
        if i % 10 == 0:
            tag = next(valid, None)
            if tag is not None:
                app.send("record", [tag], queue=QUEUE)
    app.send_many("record", [Call((t,)) for t in valid], queue=QUEUE)
    connection.close()
    app.close()
    env = {"FAIRQ_BROKER_URL": private_rabbit.url, "FAIRQ_TEST_JOURNAL": str(journal.path)}
    inspector = Inspector(private_rabbit.url)
    with worker_process(str(TASKS), "-Q", QUEUE, "-p", "2", env=env, ready=2) as worker:
        wait_for(lambda: inspector.ready(dead_letter_queue(QUEUE)) == HOSTILE and len(journal.tags("done")) == VALID,
                 timeout=300, interval=0.5, what="every message settled")
        crashes = worker.count(" died with ")
    dead = inspector.drain(dead_letter_queue(QUEUE))
    inspector.close()
    reasons: dict[str, int] = {}
    for props, _ in dead:
        reason = (props.headers or {}).get("fairq-dead-reason")
        reasons[str(reason)] = reasons.get(str(reason), 0) + 1
    completed, lost, duplicates = counts(journal.tags("done"), tags)
    record(Outcome("hostile messages", f"{HOSTILE:,} hostile messages mixed with {VALID:,} valid tasks, 2 processes",
                   VALID, completed, lost, duplicates,
                   f"{len(dead):,} dead-lettered, {crashes} worker crashes; reasons: "
                   + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))))
    assert len(dead) == HOSTILE and "None" not in reasons
    assert lost == 0 and crashes == 0
