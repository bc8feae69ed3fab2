"""SQLite backend: send -> delivery latency on idle consumers, and the CPU an idle consumer uses.

Usage: python benchmarks/sqlite_wakeup.py [--messages 200] [--idle 10] [--db /tmp/fairq-bench.db]

Consumers run in their own processes (as workers do). The producer sends one message at a time,
spaced so the consumer is idle (asleep in epoll) when each arrives; every message carries its
send time (time.time(), one host) and the consumer prints send->delivery in ms. Idle CPU is read
from /proc/PID/stat (utime+stime) of a consumer process over ``--idle`` seconds with no traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fairq.broker import Delivery, QueueSpec
from fairq.broker.sqlite import SQLiteBroker
from fairq.message import Envelope


async def consumer(url: str, out: str) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    with open(out, "a", buffering=1) as sink:

        async def handler(d: Delivery) -> None:
            sink.write(f"{(time.time() - float(d.envelope.body)) * 1000:.3f}\n")
            await d.ack()

        await broker.consume("bench", 1, handler)
        print("ready", flush=True)
        await asyncio.Event().wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def produce(url: str, n: int, gap: float) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    for _ in range(n):
        await broker.publish("bench", Envelope(str(time.time()).encode()))
        await asyncio.sleep(gap)
    await broker.close()


async def declare(url: str) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    await broker.declare(QueueSpec("bench"))
    await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between sends")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--synchronous", default="full")
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fairq-bench-"))
    db = Path(args.db) if args.db else workdir / "fairq.db"
    url = f"sqlite://{db}?synchronous={args.synchronous}"
    out = str(workdir / "latency.txt")
    asyncio.run(declare(url))
    children = [subprocess.Popen([sys.executable, __file__, "--consumer-child", url, out], stdout=subprocess.PIPE,
                                 text=True) for _ in range(args.consumers)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # let start-up settle before measuring idle CPU
        before = [cpu_seconds(c.pid) for c in children]
        start = time.monotonic()
        time.sleep(args.idle)
        wall = time.monotonic() - start
        idle = [100 * (cpu_seconds(c.pid) - b) / wall for c, b in zip(children, before)]
        asyncio.run(produce(url, args.messages, args.gap))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = Path(out).read_text().split() if Path(out).exists() else []
            if len(lines) >= args.messages:
                break
            time.sleep(0.05)
        latencies = sorted(float(x) for x in lines)
    finally:
        for child in children:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
    p = statistics.quantiles(latencies, n=100)
    print(f"sqlite wake-up ({args.consumers} idle consumer processes, synchronous={args.synchronous}, "
          f"{len(latencies)}/{args.messages} messages, one every {args.gap * 1000:.0f} ms)")
    print(f"  send -> delivery: p50 {statistics.median(latencies):.2f} ms, p99 {p[98]:.2f} ms, "
          f"max {latencies[-1]:.2f} ms")
    print(f"  idle CPU over {wall:.1f} s: " + ", ".join(f"{c:.2f} %" for c in idle) + " per consumer process")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--consumer-child":
        asyncio.run(consumer(sys.argv[2], sys.argv[3]))
    else:
        main()
