"""One worker process's side of the metrics: its hooks feed the counters and histograms, its snapshot the gauges.

The hot path is a few writes to memory-mapped values per finished run (prometheus_client's
multiprocess mode, see the package docstring): that is what makes a ``kill -9`` lose no count,
and it costs a few microseconds (BENCHMARKS.md, "Metrics"). The label lookups are cached per
(queue, task). Gauges are not kept by the hooks: every :data:`GAUGE_INTERVAL` seconds the
recorder copies :meth:`Worker.snapshot` into them, which costs the worker nothing between ticks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..worker.hooks import DeadLettered, Event, Finished, Retried
from .definitions import MetricSet

if TYPE_CHECKING:
    from ..worker.worker import Worker

__all__ = ["GAUGE_INTERVAL", "Recorder"]

#: Seconds between two copies of the worker's snapshot into the gauges.
GAUGE_INTERVAL = 1.0


class _PerTask:
    """The metric children of one (queue, task): looked up once, not on every run."""

    __slots__ = ("succeeded", "failed", "run", "wait", "retries")

    def __init__(self, metrics: MetricSet, queue: str, task: str) -> None:
        self.succeeded = metrics.tasks.labels(queue, task, "succeeded")
        self.failed = metrics.tasks.labels(queue, task, "failed")
        self.run = metrics.run_seconds.labels(queue, task)
        self.wait = metrics.queue_wait_seconds.labels(queue, task)
        self.retries = metrics.retries.labels(queue, task)


class Recorder:
    """Subscribes to ``worker``'s hooks at once; :meth:`start` / :meth:`close` on the worker's loop."""

    KINDS: tuple[type[Event], ...] = (Finished, Retried, DeadLettered)

    def __init__(self, worker: Worker, metrics: MetricSet, *, process: int = 1,
                 interval: float = GAUGE_INTERVAL) -> None:
        self._worker = worker
        self.metrics = metrics
        self.interval = interval
        self._per: dict[tuple[str, str], _PerTask] = {}
        self._dead: dict[tuple[str, str], Any] = {}
        label = str(process)
        self._gauges = (metrics.running.labels(label), metrics.held_not_started.labels(label),
                        metrics.prefetch_window.labels(label), metrics.slots.labels(label))
        self._ticker: asyncio.Task[None] | None = None
        worker.hooks.subscribe(self, *self.KINDS)

    # -- counters and histograms: the hooks ---------------------------------------------------------

    def _task(self, queue: str, task: str) -> _PerTask:
        per = self._per.get((queue, task))
        if per is None:
            per = self._per[(queue, task)] = _PerTask(self.metrics, queue, task)
        return per

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is Finished:
            assert isinstance(event, Finished)
            per = self._task(event.queue, event.task)
            (per.succeeded if event.outcome == "ok" else per.failed).inc()
            per.run.observe(event.seconds)
            if event.attempt == 1 and event.sent is not None:
                # A retry's copy keeps the first send's time: its wait would count earlier runs and the backoff.
                per.wait.observe(max(0.0, event.at - event.seconds - event.sent))
        elif kind is Retried:
            self._task(event.queue, event.task).retries.inc()
        elif kind is DeadLettered:
            assert isinstance(event, DeadLettered)
            key = (event.queue, event.reason)
            child = self._dead.get(key)
            if child is None:
                child = self._dead[key] = self.metrics.dead_letters.labels(*key)
            child.inc()

    # -- gauges: the snapshot -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Copy the worker's snapshot into the gauges now."""
        snap = self._worker.snapshot()
        running, held, window, slots = self._gauges
        running.set(snap.busy)
        held.set(snap.held_not_started)
        window.set(snap.window)
        slots.set(snap.slots)

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
