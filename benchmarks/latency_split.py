"""Where fairq's send → start latency goes, for one idle worker (issue 4's latency bar).

Splits it at the moment the worker's event loop receives the delivery:

- send → delivery: the sender's ``Task.send`` until the message is on the wire,
  the broker (on quorum queues including the Raft commit), and the client reading it;
- delivery → start: fairq's own dispatch in the worker (decode, checks, hand-off
  to the task thread) until the task function runs.

It also times the send call itself against the bare aiormq publish + confirm
that the raw rows of ``compare.py`` use. A worker process with a patched
``Worker._on_delivery`` is started from this file (``--worker``).

    .venv/bin/python benchmarks/latency_split.py --count 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from harness import metrics

URL = "amqp://guest:guest@127.0.0.1:5672/"


def pct(values: list[float], p: float) -> float:
    """Percentile ``p`` (0..1) in milliseconds, nearest rank as in the compare.py tables."""
    return metrics.percentile(values, p * 100) * 1000


def worker(url: str, queue: str, out: str) -> None:
    from fairq import App
    from fairq.worker import consumer

    app = App(broker=url)
    log = open(out, "a", buffering=1)

    @app.task(name="split.work", queue=queue)
    def work(i: int, sent: float) -> None:
        log.write(f"start {i} {time.time()}\n")

    original = consumer.Worker._on_delivery

    async def on_delivery(self: consumer.Worker, delivery: Any) -> None:
        log.write(f"delivery {json.loads(delivery.envelope.body)['args'][0]} {time.time()}\n")
        await original(self, delivery)

    consumer.Worker._on_delivery = on_delivery  # type: ignore[method-assign]

    async def run() -> None:
        w = consumer.Worker(broker_url=url, queues=[app.queue_spec(queue)], tasks=app.tasks, name="split")
        served = asyncio.ensure_future(w.run())
        await w.ready.wait()
        open(out + ".ready", "w").close()
        await served

    asyncio.run(run())


async def raw_publish_times(url: str, queue: str, count: int) -> list[float]:
    import aiormq

    connection = await aiormq.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    times = []
    for i in range(count):
        started = time.perf_counter()
        await channel.basic_publish(json.dumps({"task": "split.work", "args": [i, 0.0]}).encode(), routing_key=queue,
                                    properties=aiormq.spec.Basic.Properties(delivery_mode=2, message_id=uuid.uuid4().hex),
                                    mandatory=True)
        times.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    await connection.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--broker", default=URL)
    parser.add_argument("--worker", nargs=2, metavar=("QUEUE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.broker, *args.worker)
        return
    from fairq import App

    queue = "bench.split." + uuid.uuid4().hex[:8]
    out = f"/tmp/{queue}.log"
    proc = subprocess.Popen([sys.executable, __file__, "--broker", args.broker, "--worker", queue, out])
    app = App(broker=args.broker)
    try:
        while not os.path.exists(out + ".ready"):
            if proc.poll() is not None:
                raise SystemExit("the worker exited")
            time.sleep(0.05)
        work = app.task(name="split.work", queue=queue)(lambda i, sent: None)
        sent, calls = {}, []
        for i in range(args.count):
            sent[i] = time.time()
            started = time.perf_counter()
            work.send(i, sent[i])
            calls.append(time.perf_counter() - started)
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while sum(1 for line in open(out) if line.startswith("start")) < args.count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait()
    marks: dict[str, dict[int, float]] = {"delivery": {}, "start": {}}
    for line in open(out):
        kind, i, at = line.split()
        marks[kind][int(i)] = float(at)
    done = [i for i in marks["start"] if i in marks["delivery"]]
    to_delivery = [marks["delivery"][i] - sent[i] for i in done]
    to_start = [marks["start"][i] - marks["delivery"][i] for i in done]
    total = [marks["start"][i] - sent[i] for i in done]
    raw = asyncio.run(raw_publish_times(args.broker, queue, args.count))
    app.close()
    for name in (queue, queue + ".dlq"):
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True)
    os.remove(out)
    os.remove(out + ".ready")
    print(f"{len(done)} tasks, ms p50 / p99:")
    print(f"  send call → delivery at the worker   {pct(to_delivery, .5):6.2f} / {pct(to_delivery, .99):6.2f}")
    print(f"  delivery → task start (fairq worker) {pct(to_start, .5):6.2f} / {pct(to_start, .99):6.2f}")
    print(f"  send call → task start               {pct(total, .5):6.2f} / {pct(total, .99):6.2f}")
    print(f"  Task.send call (returns on confirm)  {pct(calls, .5):6.2f} / {pct(calls, .99):6.2f}")
    print(f"  bare aiormq publish + confirm        {pct(raw, .5):6.2f} / {pct(raw, .99):6.2f}")


if __name__ == "__main__":
    main()
