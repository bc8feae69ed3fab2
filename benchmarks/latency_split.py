"""Where fairq's send → start latency goes, for one idle worker (issue 4's latency bar).

One fairq worker (its ``Worker._on_delivery`` patched to note when the delivery
reaches its event loop) consumes a queue. Two senders take turns on it, one task
at a time, ``--interval`` apart as in compare.py's latency scenario:

- fairq's ``Task.send``;
- bare aiormq on its own event loop, publishing the same message (encoded before
  its clock starts) with one confirm at a time: compare.py's raw row.

Each send is split where it leaves the process (the publish frame's socket write,
noted by a patched ``asyncio.StreamWriter.write``), where the worker's loop has it,
and where the task starts. For ``Task.send`` the stretch before the write is split
further: the message encoded (in the calling thread), the publish running on
fairq's loop thread.

``--hops`` instead times pieces of that path alone, back to back and with a pause
before each, as in the latency scenario: on this machine a thread that has slept
10 ms runs the same code several times slower, so each hand-off between threads
costs far more than in a tight loop.

    .venv/bin/python benchmarks/latency_split.py --count 300
    .venv/bin/python benchmarks/latency_split.py --hops
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from harness import metrics

URL = "amqp://guest:guest@127.0.0.1:5672/"


def pct(values: list[float], p: float) -> float:
    """Percentile ``p`` (0..1) in milliseconds, nearest rank as in the compare.py tables."""
    return metrics.percentile(values, p * 100) * 1000


def worker(url: str, queue: str, out: str) -> None:
    from fairq import App
    from fairq.broker import open_backend
    from fairq.worker import worker as engine

    app = App(broker=url)
    log = open(out, "a", buffering=1)

    @app.task(name="split.work", queue=queue)
    def work(i: int, sent: float) -> None:
        log.write(f"start {i} {time.time()}\n")

    original = engine.Worker._on_delivery

    async def on_delivery(self: engine.Worker, delivery: Any) -> None:
        log.write(f"delivery {json.loads(delivery.envelope.body)['args'][0]} {time.time()}\n")
        await original(self, delivery)

    engine.Worker._on_delivery = on_delivery  # type: ignore[method-assign]

    async def run() -> None:
        w = engine.Worker(backend=open_backend(url), queues=[app.queue_spec(queue)], tasks=app.tasks, name="split")
        served = asyncio.ensure_future(w.run())
        await w.ready.wait()
        open(out + ".ready", "w").close()
        await served

    asyncio.run(run())


class Marks:
    """Wall-clock times of named points of the current send; the first of each name counts."""

    def __init__(self) -> None:
        self.now: dict[str, float] = {}

    def note(self, name: str) -> None:
        self.now.setdefault(name, time.time())

    def take(self) -> dict[str, float]:
        taken, self.now = self.now, {}
        return taken


def instrument(marks: Marks) -> None:
    """Note the points of a send: the socket write (both senders), and for ``Task.send`` the
    message encoded and the publish running on the loop thread."""
    import fairq.app
    import fairq.producer

    write = asyncio.StreamWriter.write

    def noted_write(self: asyncio.StreamWriter, data: Any) -> None:
        marks.note("written")
        write(self, data)

    asyncio.StreamWriter.write = noted_write  # type: ignore[method-assign]
    encode = fairq.app.encode_task

    def noted_encode(*args: Any, **kwargs: Any) -> Any:
        envelope = encode(*args, **kwargs)
        marks.note("encoded")
        return envelope

    fairq.app.encode_task = noted_encode  # type: ignore[assignment]
    publish_many = fairq.producer.Producer.publish_many

    async def noted_publish_many(self: Any, *args: Any, **kwargs: Any) -> int:
        marks.note("on the loop thread")
        return await publish_many(self, *args, **kwargs)

    fairq.producer.Producer.publish_many = noted_publish_many  # type: ignore[method-assign]


def fairq_sends(url: str, queue: str, ids: range, interval: float, marks: Marks) -> dict[int, dict[str, float]]:
    from fairq import App

    app = App(broker=url)
    try:
        work = app.task(name="split.work", queue=queue)(lambda i, sent: None)
        points = {}
        for i in ids:
            time.sleep(interval)
            marks.take()
            called = time.time()
            work.send(i, called)
            points[i] = {"called": called, "returned": time.time(), **marks.take()}
        return points
    finally:
        app.close()


async def raw_sends(url: str, queue: str, ids: range, interval: float, marks: Marks) -> dict[int, dict[str, float]]:
    import aiormq

    from fairq.broker.rabbitmq import to_properties
    from fairq.message import encode_task

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        points = {}
        for i in ids:
            await asyncio.sleep(interval)
            envelope = encode_task("split.work", [i, 0.0], {}, max_bytes=1 << 20)
            properties = to_properties(envelope)
            marks.take()
            called = time.time()
            await channel.basic_publish(envelope.body, routing_key=queue, properties=properties, mandatory=True)
            points[i] = {"called": called, "returned": time.time(), **marks.take()}
        return points
    finally:
        await connection.close()


def split(args: argparse.Namespace) -> None:
    queue = "bench.split." + uuid.uuid4().hex[:8]
    out = f"/tmp/{queue}.log"
    proc = subprocess.Popen([sys.executable, __file__, "--broker", args.broker, "--worker", queue, out])
    marks = Marks()
    instrument(marks)
    points: dict[str, dict[int, dict[str, float]]] = {"fairq Task.send": {}, "bare aiormq publish": {}}
    try:
        while not os.path.exists(out + ".ready"):
            if proc.poll() is not None:
                raise SystemExit("the worker exited")
            time.sleep(0.05)
        # Interleaved in blocks, so both senders see the same machine.
        block, n = 50, args.count
        for first in range(0, n, block):
            ids = range(first, min(first + block, n))
            points["fairq Task.send"].update(fairq_sends(args.broker, queue, ids, args.interval, marks))
            raw_ids = range(n + first, n + ids.stop)
            points["bare aiormq publish"].update(asyncio.run(raw_sends(args.broker, queue, raw_ids, args.interval, marks)))
        expected = 2 * n
        deadline = time.monotonic() + 30
        while sum(1 for line in open(out) if line.startswith("start")) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait()
        for name in (queue, queue + ".dlq"):
            subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True)
    seen: dict[str, dict[int, float]] = {"delivery": {}, "start": {}}
    for line in open(out):
        kind, index, at = line.split()
        seen[kind][int(index)] = float(at)
    os.remove(out)
    os.remove(out + ".ready")
    for sender, sends in points.items():
        done = [i for i in sends if i in seen["start"] and i in seen["delivery"] and "written" in sends[i]]
        for i in done:
            sends[i].update(delivery=seen["delivery"][i], start=seen["start"][i])
        print(f"{sender}: {len(done)} tasks, ms p50 / p99")
        stretches = [("called", "encoded", "call → message encoded"),
                     ("called", "on the loop thread", "call → publish runs on fairq's loop thread"),
                     ("called", "written", "call → publish frame written to the socket"),
                     ("written", "delivery", "socket write → the worker's loop has the delivery"),
                     ("delivery", "start", "delivery → task start (fairq worker)"),
                     ("called", "start", "call → task start"),
                     ("called", "returned", "call → return (confirm)")]
        for begin, end, label in stretches:
            values = [sends[i][end] - sends[i][begin] for i in done if end in sends[i]]
            if values:
                print(f"  {label:52} {pct(values, .5):6.2f} / {pct(values, .99):6.2f}")


def timed(step: Callable[[], Any], pause: float, count: int) -> float:
    """Median µs of ``step``, each run after ``pause`` seconds of sleep (0: back to back)."""
    times = []
    for _ in range(count):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def hops(args: argparse.Namespace) -> None:
    from fairq import App
    from fairq.message import encode_task

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    own = asyncio.new_event_loop()

    async def nothing() -> None:
        pass

    app = App(broker=args.broker)
    work = app.task(name="split.work", queue="unused")(lambda i, sent: None)

    def encode() -> None:
        work.check_arguments((1, 0.5), {})
        encode_task("split.work", (1, 0.5), {}, max_bytes=1 << 20)

    def plain() -> None:
        sum(range(200))

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("check + encode one task (Task.send's part before the hop)", encode),
        ("run a no-op coroutine on a loop thread and wait (fairq's hop, both ways)",
         lambda: asyncio.run_coroutine_threadsafe(nothing(), loop).result()),
        ("run a no-op coroutine on an event loop in the calling thread", lambda: own.run_until_complete(nothing())),
        ("sum(range(200)) (plain Python, no thread)", plain),
    ]
    pause = args.interval
    print(f"median µs of {args.count} runs: back to back | after {pause * 1000:g} ms asleep")
    for label, step in steps:
        print(f"  {label:76} {timed(step, 0, args.count):7.1f} | {timed(step, pause, args.count):7.1f}")
    loop.call_soon_threadsafe(loop.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="tasks per sender (--hops: runs per step)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between sends (compare.py: 0.01)")
    parser.add_argument("--hops", action="store_true", help="time the pieces of the send path alone")
    parser.add_argument("--broker", default=URL)
    parser.add_argument("--worker", nargs=2, metavar=("QUEUE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.broker, *args.worker)
    elif args.hops:
        hops(args)
    else:
        split(args)


if __name__ == "__main__":
    main()
