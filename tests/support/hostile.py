"""Hostile messages: what another producer, a bug or an attacker might put on a fairq queue.

Backend-neutral (body, headers, content type), so the same mix goes to RabbitMQ over pika
(tests/faults/test_hostile.py) and to every backend through fairq's seam (tests/delivery).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

#: body; headers (None: no headers at all); content type.
Message = tuple[bytes, "dict[str, Any] | None", "str | None"]
#: Bodies over the worker's 1 MiB default limit.
HUGE_BYTES = 2 * 1024 * 1024


def hostile_messages(rng: random.Random, count: int, huge: int) -> list[Message]:
    """``count`` messages, ``huge`` of them too large: random bytes, random JSON, wrong headers, other
    encodings, non-numbers, bad content types. Shuffled by ``rng``."""

    def fairq(body: bytes, **headers: Any) -> Message:
        return body, {"fairq-protocol": 1, **headers}, "application/json"

    def random_json() -> object:
        return rng.choice([None, rng.random(), rng.randint(-9, 9), "text", [1, "x"], {"k": [None]},
                           {"task": rng.randint(0, 5)}, {"task": "record", "args": "not a list"},
                           {"task": "record", "kwargs": [1]}, {"task": "", "args": []},
                           {"task": "record", "args": [1, 2, 3, 4, 5]}, {"task": "no.such.task"}])

    record_x = json.dumps({"task": "record", "args": ["x"]})
    makers: list[Callable[[], Message]] = [
        lambda: (rng.randbytes(rng.randint(0, 300)), None, None),
        lambda: fairq(rng.randbytes(rng.randint(1, 300))),
        lambda: fairq(json.dumps(random_json()).encode()),
        lambda: fairq(record_x.encode(), **{"fairq-protocol": rng.choice([2, "1", None, -1, [1], True])}),
        lambda: fairq(record_x.encode(rng.choice(["utf-16", "utf-16-be", "utf-32"]))),
        lambda: fairq(b'{"task": "record", "args": [' + rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"])
                      + b"]}"),
        lambda: fairq(json.dumps({"task": "record", "args": ["x", "y", "z"]}).encode(),
                      **{"fairq-attempt": "many", "fairq-redeliveries": [1]}),
        lambda: (b"<xml>not a task</xml>", {"fairq-protocol": 1}, "text/xml"),
    ]
    messages = [rng.choice(makers)() for _ in range(count - huge)]
    body = json.dumps({"task": "record", "args": ["x" * HUGE_BYTES]}).encode()
    messages += [fairq(body) for _ in range(huge)]
    rng.shuffle(messages)
    return messages
