"""Results' cost (issue 16): an RPC round trip against a bare send's start latency, and a group of 1,000.

One ``fairq worker -p 1`` (benchmarks/rpc_tasks.py) on an otherwise idle queue. Interleaved,
one call at a time:

- ``bare send → start``: ``send`` without a result of a task that writes its start time to a
  journal; latency = that time − the time just before ``send``;
- ``rpc round trip``: ``send(...).result()`` of a task that returns its start time; the whole
  round trip, and its own send → start (the returned stamp − the time before ``send``).

Then ``group``: 1,000 calls sent as a group and every result gathered (``results()``), against
the same 1,000 sent bare (``send_many``) until the worker has run the last one, each timed from
the first send. Rounds alternate. Prints p50 / p99 in ms and the ratios.

    .venv/bin/python benchmarks/rpc.py [--rounds 500] [--groups 5] [--url amqp://…]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import fairq

URL = "amqp://guest:guest@127.0.0.1:5672/"
TASKS = Path(__file__).with_name("rpc_tasks.py")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def journal_lines(path: Path) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_lines(path: Path, count: int) -> None:
    while journal_lines(path) < count:
        time.sleep(0.0005)


def last_time(path: Path) -> float:
    return float(path.read_text().splitlines()[-1].split()[1])


def main(url: str, rounds: int, groups: int) -> None:
    queue = f"bench.rpc.{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="fairq-rpc-"))
    journal = workdir / "journal"
    env = {**os.environ, "FAIRQ_BROKER_URL": url, "RPC_JOURNAL": str(journal), "FAIRQ_LOG_LEVEL": "warning"}
    worker = subprocess.Popen([sys.executable, "-m", "fairq", "worker", str(TASKS), "-Q", queue, "-p", "1",
                               "--no-events"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = fairq.App(url)
    try:
        app.send("rpc.stamp", queue=queue, result=True).result(timeout=60)  # the worker is up
        lines = 0
        bare: list[float] = []
        rpc: list[float] = []
        rpc_start: list[float] = []
        for i in range(rounds + 50):
            t0 = time.time()
            app.send("rpc.mark", (str(i),), queue=queue)
            lines += 1
            wait_lines(journal, lines)
            b = last_time(journal) - t0
            t0 = time.time()
            started = app.send("rpc.stamp", queue=queue, result=True).result(timeout=60)
            r = time.time() - t0
            if i >= 50:  # warm-up
                bare.append(b)
                rpc.append(r)
                rpc_start.append(started - t0)
        gathered: list[float] = []
        bare_many: list[float] = []
        for _ in range(groups):
            t0 = time.perf_counter()
            app.send_many("rpc.mark", [fairq.Call(("g",)) for _ in range(1000)], queue=queue)
            lines += 1000
            wait_lines(journal, lines)
            bare_many.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            handles = app.send_many("rpc.stamp", [fairq.Call() for _ in range(1000)], queue=queue, result=True)
            fairq.GroupHandle(handles).results(timeout=120)
            gathered.append(time.perf_counter() - t0)
    finally:
        app.close()
        worker.terminate()
        worker.wait(30)
    print(f"{url.split('@')[-1]}: {rounds} calls each, one at a time, idle worker (-p 1)")
    print(f"bare send -> start        p50 {pct(bare, .5):7.3f} ms  p99 {pct(bare, .99):7.3f} ms")
    print(f"rpc send -> start         p50 {pct(rpc_start, .5):7.3f} ms  p99 {pct(rpc_start, .99):7.3f} ms")
    print(f"rpc round trip (result()) p50 {pct(rpc, .5):7.3f} ms  p99 {pct(rpc, .99):7.3f} ms")
    print(f"round trip / bare start   p50 x{statistics.median(rpc) / statistics.median(bare):.2f}  "
          f"p99 x{pct(rpc, .99) / pct(bare, .99):.2f}")
    g, m = statistics.median(gathered), statistics.median(bare_many)
    print(f"1,000 in a group, all results gathered: median {g * 1000:.0f} ms over {groups}; "
          f"1,000 bare until the last ran: {m * 1000:.0f} ms; ratio x{g / m:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    main(args.url, args.rounds, args.groups)
