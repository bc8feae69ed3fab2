"""The recorder on an in-process Worker over ``memory://`` (the backend without worker processes): what the hooks
and the snapshot put into the metrics, read from a registry of the test's own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid

from prometheus_client import CollectorRegistry

import fairq
from fairq import message as wire
from fairq.broker import QueueSpec, open_backend
from fairq.metrics.definitions import MetricSet
from fairq.metrics.recorder import Recorder
from fairq.worker.policy import Prefetch
from fairq.worker.worker import Worker

app = fairq.App()
gate = threading.Event()


@app.task(name="ok")
def ok() -> None:
    pass


@app.task(name="fails", max_retries=1, retry_backoff=0.0)
def fails() -> None:
    raise ValueError("not today")


@app.task(name="gated")
def gated() -> None:
    assert gate.wait(20)


async def until(condition: object, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def test_runs_retries_dead_letters_and_the_snapshot_reach_the_metrics() -> None:
    registry = CollectorRegistry()
    value = registry.get_sample_value
    queue = f"metrics.{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        backend = open_backend(f"memory://metrics-{uuid.uuid4().hex[:8]}")
        producer = backend.broker()
        await producer.connect()
        await producer.declare(QueueSpec(queue))
        worker = Worker(backend=backend, queues=[QueueSpec(queue)], tasks=app.tasks, name="m", threads=2,
                        prefetch=Prefetch.parse("3"), events=False)
        recorder = Recorder(worker, MetricSet.create(registry), process=7, interval=0.02)
        recorder.start()
        run = asyncio.ensure_future(worker.run())
        try:
            await until(worker.ready.is_set, "the worker to consume")

            async def send(task: str) -> None:
                await producer.publish(queue, wire.encode_task(task, [], {}, max_bytes=1 << 20))

            for _ in range(3):
                await send("gated")
            gauges = {"process": "7"}
            await until(lambda: value("fairq_tasks_running", gauges) == 2
                        and value("fairq_tasks_held_not_started", gauges) == 1, "2 running and 1 hoarded")
            assert value("fairq_worker_slots", gauges) == 2 and value("fairq_prefetch_window", gauges) == 3
            gate.set()
            await send("ok")
            await send("fails")
            await send("missing")
            labels = {"queue": queue, "task": "fails"}
            await until(lambda: value("fairq_dead_letters_total", {"queue": queue, "reason": "task failed"}) == 1,
                        "the failed task dead-lettered")
            await until(lambda: value("fairq_dead_letters_total", {"queue": queue, "reason": "unknown task"}) == 1,
                        "the unknown task dead-lettered")
            await until(lambda: value("fairq_tasks_running", gauges) == 0, "nothing running")
            assert value("fairq_tasks_total", {**labels, "outcome": "failed"}) == 2
            assert value("fairq_tasks_total", {**labels, "outcome": "succeeded"}) == 0
            assert value("fairq_task_retries_total", labels) == 1
            assert value("fairq_tasks_total", {"queue": queue, "task": "gated", "outcome": "succeeded"}) == 3
            assert value("fairq_tasks_total", {"queue": queue, "task": "ok", "outcome": "succeeded"}) == 1
            assert value("fairq_task_run_seconds_count", labels) == 2
            assert value("fairq_task_queue_wait_seconds_count", labels) == 1  # the retry is not a first attempt
            assert value("fairq_task_queue_wait_seconds_count", {"queue": queue, "task": "gated"}) == 3
            assert value("fairq_tasks_total", {"queue": queue, "task": "missing", "outcome": "failed"}) is None
        finally:
            gate.set()
            worker.stop()
            await asyncio.wait_for(run, 20)
            await recorder.close()
            await producer.close()

    asyncio.run(body())


def test_a_worker_without_metrics_never_loads_prometheus_client() -> None:
    code = ("import sys, fairq.cli.main, fairq.worker.child, fairq.worker.supervisor; "
            "sys.exit('prometheus_client' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
