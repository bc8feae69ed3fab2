"""The embedded SQLite broker against Huey's SqliteHuey, and its latency against RabbitMQ (issue 13).

Usage: python benchmarks/sqlite_vs_huey.py [--tasks 20000] [--rounds 3] [--latency 200]
                                           [--out benchmarks/results/sqlite_vs_huey.json]

Rounds interleave fairq and Huey (a noisy machine slows both alike), and every figure is also
given as a ratio within its round:

* drain: N no-op tasks, already queued, run by 2 worker processes: ``fairq worker -p 2`` on
  ``sqlite://`` (default ``--prefetch adaptive``) against ``huey_consumer -w 2 -k process``.
  fairq's clock stops when no row of the queue is left (every task acked); Huey's when its
  queue is empty (Huey deletes a task as it hands it out, so that is earlier than "all ran").
* enqueue: N no-op calls, fairq's ``send_many`` against Huey's enqueue (one call each, as
  Huey offers no batch).
* latency: send -> task start on an idle worker (1 process, 1 slot), one task every 20 ms,
  fairq on sqlite against fairq on RabbitMQ at 127.0.0.1:5672 (a unique queue, deleted after).
Both SQLite files use their libraries' default durability (fairq: ``synchronous=full``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
AMQP = "amqp://guest:guest@127.0.0.1:5672/"

TASKS = textwrap.dedent("""
    import os, time
    from fairq import App
    from huey import SqliteHuey

    app = App()
    QUEUE = os.environ["BENCH_QUEUE"]
    huey = SqliteHuey(filename=os.environ["BENCH_HUEY_DB"], results=False)

    @app.task(queue=QUEUE)
    def noop():
        return None

    @app.task(queue=QUEUE)
    def stamp(sent):
        with open(os.environ["BENCH_LATENCY_OUT"], "a") as out:
            out.write(f"{(time.time() - sent) * 1000:.3f}\\n")

    @huey.task()
    def hnoop():
        return None
""")


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "benchtasks.py").write_text(TASKS)

    def env(self, broker: str, queue: str = "bench", tag: str = "x") -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(self.work), FAIRQ_BROKER_URL=broker, BENCH_QUEUE=queue,
                    BENCH_HUEY_DB=str(self.work / f"huey-{tag}.db"),
                    BENCH_LATENCY_OUT=str(self.work / f"latency-{tag}.txt"), FAIRQ_LOG_LEVEL="warning")

    def _python(self, code: str, env: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def enqueue_fairq(self, n: int, tag: str) -> tuple[str, float]:
        url = f"sqlite:///{self.work / f'fairq-{tag}.db'}"
        code = ("import time, benchtasks as t\n"
                "t.app.send_many('benchtasks.noop', [])\n"  # connect and declare outside the clock
                f"s = time.perf_counter(); t.noop.send_many([()] * {n}); print(time.perf_counter() - s)\n"
                "t.app.close()")
        return url, float(self._python(code, self.env(url, tag=tag)))

    def enqueue_huey(self, n: int, tag: str) -> float:
        code = ("import time, benchtasks as t\n"
                f"s = time.perf_counter()\nfor _ in range({n}): t.hnoop()\nprint(time.perf_counter() - s)")
        return float(self._python(code, self.env("memory://", tag=tag)))

    def drain_fairq(self, url: str, n: int, tag: str) -> float:
        db = sqlite3.connect(url.removeprefix("sqlite://"))
        worker = subprocess.Popen([str(BIN / "fairq"), "worker", "benchtasks", "-p", "2"], env=self.env(url, tag=tag),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.perf_counter()
        try:
            return self._until(lambda: db.execute("SELECT count(*) FROM messages WHERE queue = 'bench'").fetchone()[0]
                               == 0, start)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait()
            db.close()

    def drain_huey(self, tag: str) -> float:
        db = sqlite3.connect(str(self.work / f"huey-{tag}.db"))
        consumer = subprocess.Popen([str(BIN / "huey_consumer"), "benchtasks.huey", "-w", "2", "-k", "process"],
                                    env=self.env("memory://", tag=tag), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        start = time.perf_counter()
        try:
            return self._until(lambda: db.execute("SELECT count(*) FROM task").fetchone()[0] == 0, start)
        finally:
            consumer.send_signal(signal.SIGINT)
            consumer.wait()
            db.close()

    @staticmethod
    def _until(done: object, start: float, timeout: float = 300.0) -> float:
        assert callable(done)
        while not done():
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"drain did not finish in {timeout:.0f} s")
            time.sleep(0.005)
        return time.perf_counter() - start

    def latency(self, url: str, queue: str, n: int, tag: str) -> list[float]:
        env = self.env(url, queue, tag)
        out = Path(env["BENCH_LATENCY_OUT"])
        out.unlink(missing_ok=True)
        worker = subprocess.Popen([str(BIN / "fairq"), "worker", "benchtasks", "-p", "1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code = ("import time, benchtasks as t\n"
                "t.app.send('benchtasks.noop', queue=t.QUEUE)\n"  # declares; the worker runs it as it starts
                "time.sleep(3)\n"
                f"for _ in range({n}):\n    t.stamp.send(time.time()); time.sleep(0.02)\n"
                "time.sleep(1)\nt.app.close()")
        try:
            self._python(code, env)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait()
        return [float(line) for line in out.read_text().split()]


def delete_amqp_queues(queue: str) -> None:
    import pika  # a bench extra
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = conn.channel()
    for name in (queue, f"{queue}.dlq"):
        channel.queue_delete(name)
    conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/sqlite_vs_huey.json")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="fairq-sqlite-bench-") as tmp:
        bench = Bench(Path(tmp))
        for r in range(args.rounds):
            tag = f"r{r}"
            order = ["fairq", "huey"] if r % 2 == 0 else ["huey", "fairq"]
            row: dict[str, float] = {}
            for system in order:
                if system == "fairq":
                    url, row["fairq_enqueue_s"] = bench.enqueue_fairq(args.tasks, tag)
                    row["fairq_drain_s"] = bench.drain_fairq(url, args.tasks, tag)
                else:
                    row["huey_enqueue_s"] = bench.enqueue_huey(args.tasks, tag)
                    row["huey_drain_s"] = bench.drain_huey(tag)
            queue = f"bench-lat-{uuid.uuid4().hex[:8]}"
            try:
                amqp = bench.latency(AMQP, queue, args.latency, tag + "-amqp")
            finally:
                delete_amqp_queues(queue)
            sqlite = bench.latency(f"sqlite:///{Path(tmp) / f'lat-{tag}.db'}", "bench-lat", args.latency, tag + "-sq")
            for name, values in (("sqlite", sqlite), ("amqp", amqp)):
                row[f"{name}_latency_p50_ms"] = statistics.median(values)
                row[f"{name}_latency_p99_ms"] = pct(values, 0.99)
                row[f"{name}_latency_n"] = len(values)
            row["drain_ratio"] = row["huey_drain_s"] / row["fairq_drain_s"]
            row["enqueue_ratio"] = row["huey_enqueue_s"] / row["fairq_enqueue_s"]
            rounds.append(row)
            print(f"round {r + 1}: drain fairq {args.tasks / row['fairq_drain_s']:,.0f}/s huey "
                  f"{args.tasks / row['huey_drain_s']:,.0f}/s (x{row['drain_ratio']:.2f}); enqueue fairq "
                  f"{args.tasks / row['fairq_enqueue_s']:,.0f}/s huey {args.tasks / row['huey_enqueue_s']:,.0f}/s "
                  f"(x{row['enqueue_ratio']:.2f}); latency p50/p99 ms sqlite {row['sqlite_latency_p50_ms']:.2f}/"
                  f"{row['sqlite_latency_p99_ms']:.2f} amqp {row['amqp_latency_p50_ms']:.2f}/"
                  f"{row['amqp_latency_p99_ms']:.2f}", flush=True)
    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    Path(args.out).write_text(json.dumps({"tasks": args.tasks, "rounds": rounds, "median": summary,
                                          "cpus": os.cpu_count(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                      time.gmtime())}, indent=2))
    print("median:", json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
