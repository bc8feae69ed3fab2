"""``fairq demo``'s experiments: real workers on real queues, timed task by task.

All workers run in this one process, each with its own broker connection, its own
consumer and one task slot, so the broker sees exactly what it would see from
separate single-slot worker processes.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..app import App
from ..broker import QueueKind, QueueSpec, kind_option, open_backend
from ..broker.topology import dead_letter_queue
from ..message import Envelope, encode_task
from ..worker.hooks import Event, Finished, Hooks, Started
from ..worker.worker import RawHandler, Worker
from ..worker.policy import Prefetch
from . import dots
from .yardsticks import ideal_greedy, lower_bound

#: The article's six messages: '.' counts are seconds of work (scaled by --dot-seconds).
ARTICLE_TASKS = ["1.........", "2.........", "3.........", "4......", "5......", "6......"]
#: An uneven workload in dots: a long task then two short ones, four times. Round-robin
#: hands every long task to the same worker; fair dispatch spreads them.
UNEVEN_DOTS = [20, 2, 2] * 4


@dataclass
class Span:
    """One task's run on one worker."""

    worker: str
    label: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class PolicyRun:
    """The outcome of one dispatch policy on the uneven workload."""

    policy: str
    slots: int
    spans: list[Span]  #: in send order

    @property
    def makespan(self) -> float:
        return max(s.end for s in self.spans) - min(s.start for s in self.spans)

    @property
    def lower_bound(self) -> float:
        return lower_bound([s.seconds for s in self.spans], self.slots)

    @property
    def ideal_greedy(self) -> float:
        return ideal_greedy([s.seconds for s in self.spans], self.slots)

    def per_worker(self) -> dict[str, float]:
        busy: dict[str, float] = defaultdict(float)
        for span in self.spans:
            busy[span.worker] += span.seconds
        return dict(sorted(busy.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "makespan_s": round(self.makespan, 3),
            "lower_bound_s": round(self.lower_bound, 3),
            "ideal_greedy_s": round(self.ideal_greedy, 3),
            "ratio_to_ideal_greedy": round(self.makespan / self.ideal_greedy, 3),
            "per_worker": {k: round(v, 3) for k, v in self.per_worker().items()},
            "tasks": {k: [s.label for s in self.spans if s.worker == k] for k in self.per_worker()},
        }


@dataclass
class ArticleRun:
    """Part 1: who received which of the article's messages."""

    spans: list[Span]
    assignments: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"tasks": ARTICLE_TASKS, "assignments": self.assignments,
                "counts": {k: len(v) for k, v in self.assignments.items()}}


async def _run_workers(url: str, spec: QueueSpec, names: Sequence[str], prefetch: Prefetch,
                       messages: Sequence[tuple[str, Envelope]], *, tasks: dict[str, Any] | None = None,
                       raw: Callable[[str], RawHandler] | None = None) -> list[Span]:
    """Start one single-slot worker per name, publish ``messages`` (label, envelope), wait for all to finish."""
    started: dict[str, Event] = {}
    spans: dict[str, Span] = {}
    all_done = asyncio.Event()
    labels = {env.message_id: label for label, env in messages}

    def record(event: Event) -> None:
        """The recorder: a span from each task's Started to its Finished hook."""
        if isinstance(event, Started):
            started[event.message_id] = event
            return
        begin = started[event.message_id]
        spans[event.message_id] = Span(event.worker, labels.get(event.message_id, "?"), begin.at, event.at)
        if len(spans) == len(messages):
            all_done.set()

    def hooks() -> Hooks:
        own = Hooks()
        own.subscribe(record, Started, Finished)
        return own

    backend = open_backend(url)
    admin = backend.broker()
    await admin.connect()
    workers = [Worker(backend=backend, queues=[spec], tasks=tasks or {}, name=name, threads=1, prefetch=prefetch,
                      raw_handler=raw(name) if raw else None, hooks=hooks()) for name in names]
    runs = [asyncio.ensure_future(w.run()) for w in workers]
    try:
        await admin.declare(spec)
        await _first_of(asyncio.gather(*(w.ready.wait() for w in workers)), runs)
        # Published only once every consumer is registered: round-robin needs them all present.
        await asyncio.gather(*(admin.publish(spec.name, env) for _, env in messages))
        await _first_of(all_done.wait(), runs)
    finally:
        for w in workers:
            if all_done.is_set():
                w.stop()
            else:
                w.abort()
        await asyncio.gather(*runs, return_exceptions=True)
        for queue in (spec.name, dead_letter_queue(spec.name)):
            await admin.delete(queue)
        await admin.close()
    return [spans[env.message_id or ""] for _, env in messages]


async def _first_of(awaitable: Any, runs: Sequence[asyncio.Future[None]]) -> None:
    """Await ``awaitable``, but raise at once if a worker's run ends early (it failed)."""
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([waiter, *runs], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        for run in done:
            run.result()  # raises the worker's error
        raise RuntimeError("a demo worker stopped early")


def _queue(part: str) -> str:
    return f"fairq.demo.{uuid.uuid4().hex[:8]}.{part}"


def _echo(name: str, width: int) -> Callable[[str], None]:
    def echo(line: str) -> None:
        print(f"{name:<{width}} |{line}", flush=True)

    return echo


async def run_article(url: str, dot_seconds: float, workers: int = 3, quiet: bool = False) -> ArticleRun:
    """Part 1: the article's six messages on three single-slot fair workers (prefetch 1)."""
    names = [f"worker{i + 1}" for i in range(workers)]
    width = max(len(n) for n in names)

    def handler(name: str) -> RawHandler:
        echo = (lambda line: None) if quiet else _echo(name, width)
        return functools.partial(dots, echo=echo, seconds_per_dot=dot_seconds)

    messages = [(body, Envelope(body=body.encode(), message_id=uuid.uuid4().hex)) for body in ARTICLE_TASKS]
    spans = await _run_workers(url, QueueSpec(_queue("article"), options=kind_option(QueueKind.PLAIN)), names, Prefetch("fair"), messages,
                               raw=handler)
    assignments = {name: [s.label for s in spans if s.worker == name] for name in names}
    return ArticleRun(spans, assignments)


async def run_policy(url: str, policy: str, dot_seconds: float, workers: int = 3,
                     dots_per_task: Sequence[int] = UNEVEN_DOTS) -> PolicyRun:
    """Part 2: the uneven workload under one dispatch policy."""
    app = App(broker=url)

    @app.task(name="fairq.demo.work")
    def work(seconds: float) -> None:
        time.sleep(seconds)

    names = [f"worker{i + 1}" for i in range(workers)]
    messages = [(f"{n * dot_seconds:g}s", encode_task(work.name, [n * dot_seconds], {}, max_bytes=app.max_message_bytes))
                for n in dots_per_task]
    spans = await _run_workers(url, app.queue_spec(_queue(policy)), names, Prefetch.parse(policy), messages,
                               tasks=app.tasks)
    return PolicyRun(policy, workers, spans)


async def run_all(url: str, dot_seconds: float, workers: int = 3, quiet: bool = False,
                  policies: Sequence[str] = ("unlimited", "fair", "adaptive")) -> tuple[ArticleRun, list[PolicyRun]]:
    article = await run_article(url, dot_seconds, quiet=quiet)
    runs = [await run_policy(url, p, dot_seconds, workers) for p in policies]
    return article, runs

