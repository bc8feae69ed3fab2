"""What a producer's first send costs on RabbitMQ: connect, declare, publish (issue 13, the delay chain).

Each round makes a fresh App (so a fresh connection) on a fresh queue and times, on
the sync API as a user calls it:

- ``first send``: the first ``send`` (connect, declare the queue and its dead-letter queue, publish);
- ``second send``: the next one on the same connection (publish only);
- ``first delayed``: a fresh App's first ``send(delay=…)`` on a queue that exists already.

Before issue 13 every producer declared the whole delay chain (29 levels, their bindings)
on its first send; now only its first delayed send does. Rounds are interleaved and
queues deleted afterwards. Prints medians in ms.

    .venv/bin/python benchmarks/first_send.py [--rounds 30] [--url amqp://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import fairq
from fairq.broker import open_backend
from fairq.broker.topology import dead_letter_queue

URL = "amqp://guest:guest@127.0.0.1:5672/"


def one_round(url: str, prefix: str) -> tuple[float, float, float, list[str]]:
    queue = f"{prefix}.{uuid.uuid4().hex[:8]}"
    app = fairq.App(broker=url)
    try:
        start = time.perf_counter()
        app.send("bench.noop", queue=queue)
        first = time.perf_counter() - start
        start = time.perf_counter()
        app.send("bench.noop", queue=queue)
        second = time.perf_counter() - start
    finally:
        app.close()
    app = fairq.App(broker=url)
    try:
        start = time.perf_counter()
        app.send("bench.noop", queue=queue, delay=0.1)
        delayed = time.perf_counter() - start
    finally:
        app.close()
    return first, second, delayed, [queue]


async def cleanup(url: str, queues: list[str]) -> None:
    """Delete the queues once each holds its three messages: a delayed one still in the chain when its
    queue goes would end in fairq.delay.unroutable."""
    broker = open_backend(url).broker()
    await broker.connect()
    try:
        for queue in queues:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stats = await broker.stats(queue)
                if stats is None or stats.ready >= 3:
                    break
                await asyncio.sleep(0.05)
            await broker.delete(queue)
            await broker.delete(dead_letter_queue(queue))
    finally:
        await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    one_round(args.url, "bench.first.warmup")  # imports, the broker's first declare of the chain
    firsts, seconds, delays, queues = [], [], [], []
    try:
        for _ in range(args.rounds):
            first, second, delayed, made = one_round(args.url, "bench.first")
            firsts.append(first)
            seconds.append(second)
            delays.append(delayed)
            queues += made
    finally:
        asyncio.run(cleanup(args.url, queues))
    print(f"{args.rounds} rounds, medians:")
    print("| send | ms |\n|---|---|")
    for label, values in (("first send (fresh connection)", firsts), ("second send", seconds),
                          ("first delayed send (fresh connection)", delays)):
        print(f"| {label} | {statistics.median(values) * 1000:.1f} |")


if __name__ == "__main__":
    main()
