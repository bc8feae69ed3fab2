"""Task and worker events on every backend (RabbitMQ, SQLite, memory): what a listener sees, in which order."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import fairq
from fairq import message as wire
from fairq.events import EventOptions, TaskEvent, WorkerHeartbeat, WorkerOffline, WorkerOnline, listen
from fairq.events.codec import encode_worker_batch, worker_fields

from conftest import scene, until

app = fairq.App()
gate = threading.Event()


@app.task(name="ok")
def ok(n: int) -> int:
    return n


@app.task(name="fails", max_retries=1, retry_backoff=0.0)
def fails() -> None:
    raise ValueError("not today")


@app.task(name="gated")
def gated() -> None:
    assert gate.wait(20)


def test_a_task_that_succeeds_is_received_started_and_succeeded_with_its_fields(backend_url: str) -> None:
    before = time.time()

    async def body() -> None:
        async with scene(backend_url, app) as s:
            mid = await s.send("ok", 1)
            await s.wait(lambda: "succeeded" in s.kinds(mid), "succeeded")
            assert s.kinds(mid) == ["received", "started", "succeeded"]
            received, started, succeeded = s.of(mid)
            for e in (received, started, succeeded):
                assert (e.task, e.queue, e.worker, e.process, e.attempt) == ("ok", s.queue, s.worker.name, 1, 1)
                assert e.sent is not None and before - 1 <= e.sent <= e.at  # AMQP timestamps are whole seconds
            assert received.at <= started.at <= succeeded.at
            assert started.slot == succeeded.slot == 0 and received.slot is None
            assert started.wait is not None and started.wait >= 0 and succeeded.wait == started.wait
            assert succeeded.run is not None and 0 <= succeeded.run <= succeeded.at - started.at + 1e-3
            online = [e for e in s.events if isinstance(e, WorkerOnline)]
            assert len(online) == 1 and s.events.index(online[0]) < s.events.index(received)
            assert (online[0].slots, online[0].policy, online[0].queues) == (1, "fair", (s.queue,))

    asyncio.run(body())


def test_a_failing_task_is_retried_then_dead_lettered_each_step_in_order(backend_url: str) -> None:
    async def body() -> None:
        async with scene(backend_url, app) as s:
            mid = await s.send("fails")
            await s.wait(lambda: "dead-lettered" in s.kinds(mid), "the dead letter")
            assert s.kinds(mid) == ["received", "started", "failed", "retried",
                                    "received", "started", "failed", "dead-lettered"]
            events = s.of(mid)
            assert [e.attempt for e in events] == [1, 1, 1, 1, 2, 2, 2, 2]
            failed = [e for e in events if e.kind == "failed"]
            assert all(e.error == "ValueError: not today" and e.run is not None for e in failed)
            assert events[3].delay == 0.0
            assert events[-1].reason == wire.REASON_FAILED

    asyncio.run(body())


def test_heartbeats_show_the_running_task_and_what_waits_then_stop_hands_back_and_goes_offline(
        backend_url: str) -> None:
    gate.clear()

    async def body() -> None:
        async with scene(backend_url, app, prefetch="2") as s:
            running = await s.send("gated")
            waiting = await s.send("gated")

            def busy_heartbeat() -> WorkerHeartbeat | None:
                beats = [e for e in s.events if isinstance(e, WorkerHeartbeat)]
                return beats[-1] if beats and beats[-1].held == 2 and beats[-1].running else None

            beat = await s.wait(busy_heartbeat, "a heartbeat while one task runs and one waits")
            assert [(r.message_id, r.task, r.slot, r.sync) for r in beat.running] == [(running, "gated", 0, True)]
            assert beat.held_not_started == 1 and beat.window == 2 and beat.slots == 1
            assert beat.state == "running" and beat.connected and beat.interval == 0.25
            assert beat.running[0].started <= beat.at and beat.counters.received == 2
            assert s.kinds(waiting) == ["received"]

            s.worker.stop()
            await s.wait(lambda: "handed-back" in s.kinds(waiting), "the waiting task handed back")
            assert s.kinds(waiting) == ["received", "handed-back"] and s.of(waiting)[-1].how == "requeued"
            gate.set()
            await s.wait(lambda: "worker.offline" in s.keys(), "offline")
            assert s.kinds(running) == ["received", "started", "succeeded"]
            offline = s.events[-1]
            assert isinstance(offline, WorkerOffline), "offline is the worker's last event"
            assert offline.counters.succeeded == 1 and offline.counters.handed_back == 1

    asyncio.run(body())


def test_a_listener_that_joins_late_sees_every_live_workers_next_heartbeat(backend_url: str) -> None:
    async def body() -> None:
        async with scene(backend_url, app, patterns=["task.#"]) as s:
            async with listen(s.backend, ["worker.heartbeat"]) as late:
                async def heartbeat() -> WorkerHeartbeat:
                    while True:
                        event = await late.get(timeout=20)
                        assert event is not None, "no heartbeat within 20 s"
                        if isinstance(event, WorkerHeartbeat) and event.worker == s.worker.name:
                            return event

                beat = await asyncio.wait_for(heartbeat(), 30)
                assert beat.slots == 1 and beat.queues == (s.queue,)

    asyncio.run(body())


def test_a_batch_of_a_future_format_is_counted_and_skipped_and_the_listener_goes_on(backend_url: str) -> None:
    async def body() -> None:
        async with scene(backend_url, app) as s:
            future = json.dumps({"v": 2, "key": "task.started", "worker": s.worker.name, "process": 1, "seq": 1,
                                 "whatever": []}).encode()
            assert s.worker.broker.publish_event("task.started", future)
            mid = await s.send("ok", 2)
            await s.wait(lambda: "succeeded" in s.kinds(mid), "the task's events after the unreadable batch")
            await s.wait(lambda: s.stream.stats.undecodable == 1, "the unreadable batch counted")
            assert s.stream.problem is not None and "format version 2" in s.stream.problem
            assert s.kinds(mid) == ["received", "started", "succeeded"]

    asyncio.run(body())


def test_a_listener_that_never_reads_holds_up_nothing(backend_url: str) -> None:
    async def body() -> None:
        async with scene(backend_url, app, patterns=["worker.offline"]) as s:
            async with listen(s.backend, ["#"], backlog=5) as idle:  # never read
                ids = [await s.send("ok", i) for i in range(200)]
                await s.wait(lambda: s.worker.snapshot().counters.succeeded == len(ids), "every task done")
                await until(lambda: idle.stats.dropped > 0, "the idle listener's backlog to overflow")
                assert len(idle.take()) == 5

    asyncio.run(body())


def test_a_worker_with_events_off_sends_none(backend_url: str) -> None:
    async def body() -> None:
        async with scene(backend_url, app, events=False) as s:
            mid = await s.send("ok", 3)
            await s.wait(lambda: s.worker.snapshot().counters.succeeded == 1, "the task done")
            # Whatever this worker would have sent goes out before this marker (the same event channel).
            marker = WorkerOffline(kind="offline", worker=s.worker.name, process=9, at=float(int(time.time())), host="h", pid=1)
            body = encode_worker_batch("offline", s.worker.name, 9, 1, [worker_fields(marker)])
            assert s.worker.broker.publish_event("worker.offline", body)
            await s.wait(lambda: s.events, "the marker")
            assert s.events == [marker] and s.kinds(mid) == []

    asyncio.run(body())


def test_each_process_number_and_the_options_are_in_the_events(backend_url: str) -> None:
    options = EventOptions(process=3, processes=4, node="the-node", heartbeat=0.25)

    async def body() -> None:
        async with scene(backend_url, app, events=options) as s:
            mid = await s.send("ok", 4)
            await s.wait(lambda: "succeeded" in s.kinds(mid), "succeeded")
            online = next(e for e in s.events if isinstance(e, WorkerOnline))
            assert (online.process, online.processes, online.node) == (3, 4, "the-node")
            assert all(e.process == 3 for e in s.events)
            assert all(isinstance(e, TaskEvent) for e in s.of(mid))

    asyncio.run(body())
