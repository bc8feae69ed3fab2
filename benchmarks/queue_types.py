"""What quorum queues cost against classic, for a fairq worker, at each prefetch (issue 4, scope 4).

One worker process's engine (fairq.worker.worker.Worker, one slot, no-op sync
task) drains N pre-filled tasks from a classic and from a quorum queue, at each
prefetch policy, rounds interleaved so the noisy machine hits both alike.
Prints a Markdown table: tasks/s, and quorum ÷ classic at each prefetch.

    .venv/bin/python benchmarks/queue_types.py [--count 20000] [--rounds 3]
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
from fairq.worker.hooks import Event, Finished, Hooks, Started
from fairq.worker.worker import Worker
from fairq.worker.policy import Prefetch

URL = "amqp://guest:guest@127.0.0.1:5672/"
POLICIES = ["1", "10", "100", "1000", "adaptive"]
KINDS = ["classic", "quorum"]


async def drain(kind: str, policy: str, count: int) -> float:
    """Tasks per second from the first task start to the last task end."""
    app = fairq.App(broker=URL, queue_kind=kind)

    @app.task(name="bench.noop")
    def noop(i: int) -> None:
        pass

    queue = f"bench.qtype.{kind}.{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(app.send_many, "bench.noop", [fairq.Call((i,)) for i in range(count)], queue=queue)
    await asyncio.to_thread(app.close)
    times: list[float] = []
    done = asyncio.Event()

    def observe(event: Event) -> None:
        times.append(event.at)
        if len(times) == 2 * count:
            done.set()

    hooks = Hooks()
    hooks.subscribe(observe, Started, Finished)
    backend = open_backend(URL)
    worker = Worker(backend=backend, queues=[app.queue_spec(queue)], tasks=app.tasks, name="bench", threads=1,
                    prefetch=Prefetch.parse(policy), hooks=hooks)
    run = asyncio.ensure_future(worker.run())
    await done.wait()
    worker.stop()
    await run
    admin = backend.broker()
    await admin.connect()
    for q in (queue, dead_letter_queue(queue)):
        await admin.delete(q)
    await admin.close()
    return count / (max(times) - min(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[tuple[str, str], list[float]] = {}
    started = time.time()
    for _ in range(args.rounds):
        for policy in POLICIES:
            for kind in KINDS:
                rates.setdefault((kind, policy), []).append(asyncio.run(drain(kind, policy, args.count)))
    print(f"{args.count:,} no-op tasks, 1 worker process × 1 slot, median of {args.rounds} interleaved rounds, "
          f"{time.time() - started:.0f} s\n")
    print("| prefetch | classic tasks/s | quorum tasks/s | quorum ÷ classic |")
    print("|---|---:|---:|---:|")
    for policy in POLICIES:
        c = statistics.median(rates[("classic", policy)])
        q = statistics.median(rates[("quorum", policy)])
        print(f"| {policy} | {c:,.0f} | {q:,.0f} | {q / c:.2f} |")


if __name__ == "__main__":
    main()
