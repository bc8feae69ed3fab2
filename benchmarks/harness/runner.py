"""One run: a system's workers on a fresh, uniquely named queue, its sender, its events, its cleanup."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import broker
from .events import Event, EventFile
from .procs import WorkerExited, Workers
from .systems import System

BENCH_DIR = Path(__file__).resolve().parent.parent
SYSTEMS_DIR = BENCH_DIR / "systems"


class Refused(RuntimeError):
    """The system's workers exited before running anything (fairq's CLI refusing a policy, say)."""


@dataclass
class Context:
    """What every run of one harness invocation shares."""

    url: str
    tmp: Path
    quick: bool
    verbose: bool = True
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    #: fairq policies the CLI refused, with its reason: later scenarios skip them.
    refused: dict[str, str] = field(default_factory=dict)
    #: A directory holding the fairq package to run (a snapshot of a commit), else the installed one.
    fairq_path: Path | None = None

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


Task = tuple[int, float]  #: (index, seconds of sleep)


class Run:
    """Use as a context manager: on exit the workers are stopped and the queues deleted."""

    def __init__(self, ctx: Context, scenario: str, system: System) -> None:
        self.ctx = ctx
        self.system = system
        self.id = uuid.uuid4().hex[:8]
        self.queue = f"bench.sys.{scenario}.{system.slug}.{self.id}"
        self.dir = ctx.tmp / f"{scenario}-{system.slug}-{self.id}"
        self.dir.mkdir(parents=True)
        self.events = EventFile(self.dir / "events")
        self.workers: Workers | None = None
        path = [str(SYSTEMS_DIR)] + ([str(ctx.fairq_path)] if ctx.fairq_path else [])
        #: Where this run's system talks to: the shared RabbitMQ, or a SQLite file of its own (fairq only).
        self.url = f"sqlite://{self.dir / 'broker.db'}" if system.backend == "sqlite" else ctx.url
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "BENCH_BROKER_URL": self.url,
                    "BENCH_QUEUE": self.queue, "BENCH_EVENTS": str(self.events.path), "BENCH_MODE": system.mode,
                    "FAIRQ_BROKER_URL": self.url, "PYTHONUNBUFFERED": "1"}

    def __enter__(self) -> Run:
        if self.system.family == "raw":
            broker.declare(self.ctx.url, self.queue, self.system.queue_kind)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.workers is not None:
            self.workers.stop()
        if self.system.backend == "amqp":
            broker.delete_run(self.ctx.url, self.queue)  # a SQLite run's file goes with the run's directory

    def send(self, tasks: Sequence[Task], interval: float = 0.0, warmup: bool = False, chunk: int = 0) -> float:
        """Send ``tasks`` with the system's own client in a fresh process; returns its timed seconds.

        ``chunk``: send in batches of this many (0: one batch)."""
        plan = self.dir / "plan.json"
        plan.write_text(json.dumps({"tasks": list(tasks), "interval": interval, "warmup": warmup, "chunk": chunk}))
        budget = 120 + len(tasks) / 100 + len(tasks) * interval
        done = subprocess.run([sys.executable, str(SYSTEMS_DIR / "sender.py"), self.system.sender, str(plan)],
                              env=self.env, cwd=SYSTEMS_DIR, capture_output=True, text=True, timeout=budget)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b", line)]
            raise RuntimeError(f"sender for {self.system.label} failed: {(errors or done.stderr.splitlines() or ['?'])[-1]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])

    def start(self, processes: int) -> Workers:
        commands = self.system.worker_commands(processes, self.ctx.bin_dir, SYSTEMS_DIR, self.id)
        self.workers = Workers(commands, self.env, SYSTEMS_DIR, self.dir / "workers.log")
        self.workers.start()
        return self.workers

    def check(self) -> None:
        """Raise if a worker exited: :class:`Refused` if no task ran yet, else the exit itself."""
        assert self.workers is not None
        try:
            self.workers.check()
        except WorkerExited as exc:
            if self.events.count() == 0 and "--prefetch" in exc.tail:
                raise Refused(exc.tail) from None
            raise

    def wait_ready(self, processes: int, timeout: float = 60.0) -> None:
        """Wait until every worker consumes the run's queue."""
        expected = self.system.expected_consumers(processes)
        if self.system.backend == "sqlite":
            broker.wait_fairq_consumers(self.url, self.queue, expected, timeout, self.check)
        else:
            broker.wait_consumers(self.ctx.url, self.queue, expected, timeout, self.check)

    def wait_events(self, expected: int, timeout: float) -> list[Event]:
        """Wait until ``expected`` tasks have recorded their end; return the events."""
        deadline = time.monotonic() + timeout
        while self.events.count() < expected:
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.system.label}: {self.events.count()} of {expected} tasks after {timeout:.0f} s")
            time.sleep(0.05)
        return self.events.read()
