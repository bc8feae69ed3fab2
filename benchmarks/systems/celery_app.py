"""Celery's side of the benchmark, configured as its users deploy it.

Defaults: the py-amqp transport, prefetch multiplier 4, early acks, the prefork
pool. ``BENCH_MODE=fair``: ``task_acks_late=True`` and
``worker_prefetch_multiplier=1``, Celery's documented setting for long tasks.
``BENCH_MODE=confirm``: publisher confirms (``confirm_publish``), one at a time.
"""

from __future__ import annotations

import events
import settings
from celery import Celery

app = Celery("bench", broker=settings.broker_url().replace("pyamqp://", "amqp://"))
app.conf.update(
    task_default_queue=settings.queue(),
    broker_connection_retry_on_startup=True,
)
if settings.mode() == "fair":
    app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
if settings.mode() == "confirm":
    app.conf.update(broker_transport_options={"confirm_publish": True})


@app.task(name="bench.work")
def work(i: int, seconds: float, sent: float) -> None:
    events.run_task(i, seconds, sent)


def send_batch(items: list[tuple[int, float]], sent: float) -> None:
    """One ``apply_async`` per task (no confirms unless ``BENCH_MODE=confirm``)."""
    for i, seconds in items:
        work.apply_async((i, seconds, sent))


def send_one(i: int, seconds: float, sent: float) -> None:
    work.apply_async((i, seconds, sent))


def close() -> None:
    app.pool.force_close_all()
