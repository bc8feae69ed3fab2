"""Every metric fairq exports: its name, help, labels and buckets, in one place (docs/metrics.md).

Names follow Prometheus conventions: the ``fairq_`` prefix, base units (seconds), ``_total`` on
counters. Labels stay bounded: ``task`` only on what ran (a registered task, or ``raw``), never on
refused messages, whose task name is whatever a sender wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["OUTCOMES", "RUN_BUCKETS", "WAIT_BUCKETS", "MetricSet"]

#: The ``outcome`` label of ``fairq_tasks_total``: the run ended well, or raised (a retry or a dead
#: letter follows, counted by their own counters). The words of the task events (docs/events.md).
OUTCOMES = ("succeeded", "failed")

#: Seconds. From a millisecond no-op to an hour-long report.
RUN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               120.0, 300.0, 600.0, 1800.0, 3600.0)
WAIT_BUCKETS = RUN_BUCKETS

#: How the supervisor adds up a gauge over processes: each process keeps its own series (the
#: ``process`` label), and a process that exited drops out (prometheus_client's ``livesum``).
_LIVE: Final = "livesum"


@dataclass(frozen=True)
class MetricSet:
    """One worker process's metrics. ``registry``: where to register them (None in multiprocess mode,
    where the supervisor's collector reads the files instead)."""

    tasks: Counter
    retries: Counter
    dead_letters: Counter
    run_seconds: Histogram
    queue_wait_seconds: Histogram
    running: Gauge
    held_not_started: Gauge
    prefetch_window: Gauge
    slots: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> MetricSet:
        task = ("queue", "task")
        return cls(
            tasks=Counter("fairq_tasks", "Task runs that ended, by outcome (succeeded or failed).",
                          (*task, "outcome"), registry=registry),
            retries=Counter("fairq_task_retries", "Retry copies the broker confirmed.", task, registry=registry),
            dead_letters=Counter("fairq_dead_letters", "Dead letters the broker confirmed (failed runs and refused "
                                 "messages), by reason.", ("queue", "reason"), registry=registry),
            run_seconds=Histogram("fairq_task_run_seconds", "How long task runs took.", task,
                                  buckets=RUN_BUCKETS, registry=registry),
            queue_wait_seconds=Histogram("fairq_task_queue_wait_seconds", "Seconds from send to start, of first "
                                         "attempts.", task, buckets=WAIT_BUCKETS, registry=registry),
            running=Gauge("fairq_tasks_running", "Tasks a slot runs now.", ("process",), registry=registry,
                          multiprocess_mode=_LIVE),
            held_not_started=Gauge("fairq_tasks_held_not_started", "Tasks the process holds that no slot has "
                                   "started: work an idle worker could be doing.", ("process",),
                                   registry=registry, multiprocess_mode=_LIVE),
            prefetch_window=Gauge("fairq_prefetch_window", "Unacked deliveries the broker may push to each of the "
                                  "process's consumers (0: no cap).", ("process",), registry=registry,
                                  multiprocess_mode=_LIVE),
            slots=Gauge("fairq_worker_slots", "Task slots (-t) of the process.", ("process",), registry=registry,
                        multiprocess_mode=_LIVE),
        )
