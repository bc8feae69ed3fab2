"""fairq's side of the benchmark: one App, one task on this run's queue.

``BENCH_MODE=classic`` makes the App create a classic queue instead of fairq's
default quorum queue.
"""

from __future__ import annotations

import events
import settings

import fairq

app = fairq.App(broker=settings.broker_url(), queue_kind="classic" if settings.mode() == "classic" else "quorum")


@app.task(queue=settings.queue(), name="bench.work")
def work(i: int, seconds: float, sent: float) -> None:
    events.run_task(i, seconds, sent)


def send_batch(items: list[tuple[int, float]], sent: float) -> None:
    """All at once: ``App.send_many`` pipelines publishes and waits for every confirm."""
    work.send_many([(i, seconds, sent) for i, seconds in items])


def send_one(i: int, seconds: float, sent: float) -> None:
    """One confirmed send."""
    work.send(i, seconds, sent)


def close() -> None:
    app.close()
