"""The Picture folds task events, heartbeats and counts into per-queue and per-worker views (no I/O)."""

from __future__ import annotations

import json

from fairq.events import Counters, RunningTask, TaskEvent, WorkerHeartbeat, WorkerOffline, WorkerOnline
from fairq.observe import Counts, Picture, QueueRow, lost_after

T0 = 1_800_000_000.0
Q = "images"
WHO = dict(host="h1", pid=41, node="n", processes=2, slots=2, policy="fair", queues=(Q,), version="0.1.0",
           broker="amqp://guest:***@localhost:5672/", broker_node="localhost:5672", interval=2.0)


def task(kind: str, message_id: str, at: float, worker: str = "w.1", **fields: object) -> TaskEvent:
    return TaskEvent(kind=kind, worker=worker, process=1, at=at, message_id=message_id, task="resize", queue=Q,
                     attempt=1, **fields)  # type: ignore[arg-type]


def beat(at: float, running: tuple[RunningTask, ...] = (), held_not_started: int = 0, worker: str = "w.1",
         counters: Counters = Counters(), **who: object) -> WorkerHeartbeat:
    return WorkerHeartbeat(kind="heartbeat", worker=worker, process=1, at=at, **{**WHO, **who},  # type: ignore[arg-type]
                           window=2, held=len(running) + held_not_started, held_not_started=held_not_started,
                           running=running, counters=counters)


def counts(ready: int, unacked: int | None = None, delayed: int | None = 0) -> Counts:
    return Counts((QueueRow(Q, ready, 1, 0, unacked=unacked, delayed=delayed),), listed=unacked is not None)


def test_task_events_tell_what_each_worker_holds_and_runs() -> None:
    picture = Picture()
    picture.apply(WorkerOnline(kind="online", worker="w.1", process=1, at=T0, **WHO), now=T0)  # type: ignore[arg-type]
    for n in range(3):
        picture.apply(task("received", f"m{n}", T0 + 0.1), now=T0 + 0.1)
    picture.apply(task("started", "m0", T0 + 0.2, slot=0, wait=0.05), now=T0 + 0.2)
    picture.apply(task("started", "m1", T0 + 0.3, slot=1, wait=0.15), now=T0 + 0.3)

    (queue,) = picture.queue_views(now=T0 + 1)
    assert (queue.name, queue.running, queue.held_not_started, queue.held, queue.held_from) == (Q, 2, 1, 3, "workers")
    (worker,) = picture.worker_views(now=T0 + 1)
    assert [(r.message_id, r.slot, round(r.elapsed, 3)) for r in worker.running] == [("m0", 0, 0.8), ("m1", 1, 0.7)]
    assert (worker.state, worker.held, worker.held_not_started, worker.host, worker.slots) == ("running", 3, 1, "h1", 2)
    assert worker.broker_node == "localhost:5672"

    picture.apply(task("succeeded", "m0", T0 + 1.5, slot=0, run=1.3), now=T0 + 1.5)
    picture.apply(task("failed", "m1", T0 + 1.6, slot=1, run=1.3, error="E: x"), now=T0 + 1.6)
    (queue,) = picture.queue_views(now=T0 + 2)
    (worker,) = picture.worker_views(now=T0 + 2)
    # The failed one is no longer running but still held until its retry or dead letter is confirmed.
    assert (queue.running, queue.held, worker.succeeded, worker.failed) == (0, 2, 1, 1)
    assert (queue.wait_p50, queue.wait_p99) == (0.05, 0.15)


def test_a_heartbeat_is_the_truth_about_a_worker_whatever_events_were_missed() -> None:
    picture = Picture()
    picture.apply(task("received", "seen-then-lost", T0), now=T0)
    picture.apply(task("started", "seen-then-lost", T0, slot=0), now=T0)  # its end was dropped on the way
    picture.apply(task("received", "gone-unseen", T0), now=T0)
    running = (RunningTask("late", "resize", 1, T0 - 5, True, Q),)
    picture.apply(beat(T0 + 1, running, held_not_started=3, counters=Counters(succeeded=7)), now=T0 + 1)

    (worker,) = picture.worker_views(now=T0 + 1)
    assert [r.message_id for r in worker.running] == ["late"]
    assert (worker.held_not_started, worker.held, worker.succeeded, worker.window) == (3, 4, 7, 2)
    (queue,) = picture.queue_views(now=T0 + 1)
    assert (queue.running, queue.held_not_started) == (1, 3)

    picture.apply(task("succeeded", "late", T0 + 1.2, slot=1, run=6.2), now=T0 + 1.2)
    assert picture.worker_views(now=T0 + 1.3)[0].succeeded == 8  # the beat's 7, and one since


def test_a_worker_silent_for_a_few_heartbeats_is_lost_and_its_tasks_no_longer_count() -> None:
    picture = Picture()
    picture.apply(beat(T0, (RunningTask("m", "resize", 0, T0, True, Q),)), now=T0)
    assert picture.worker_views(now=T0 + lost_after(2.0) - 0.1)[0].state == "running"
    later = T0 + lost_after(2.0) + 0.1
    (worker,) = picture.worker_views(now=later)
    assert (worker.state, worker.lost, worker.running, worker.held) == ("lost", True, (), 0)
    assert worker.heartbeat_age is not None and worker.heartbeat_age > 6
    (queue,) = picture.queue_views(now=later)
    assert (queue.running, queue.workers) == (0, ())


def test_offline_ends_what_a_worker_held_and_a_new_process_of_the_same_name_starts_afresh() -> None:
    picture = Picture()
    picture.apply(beat(T0, held_not_started=2), now=T0)
    picture.apply(WorkerOffline(kind="offline", worker="w.1", process=1, at=T0 + 1, **WHO,  # type: ignore[arg-type]
                                counters=Counters(succeeded=3)), now=T0 + 1)
    (worker,) = picture.worker_views(now=T0 + 2)
    assert (worker.state, worker.held, worker.succeeded) == ("offline", 0, 3)

    picture.apply(beat(T0 + 3, pid=99), now=T0 + 3)
    (worker,) = picture.worker_views(now=T0 + 3)
    assert (worker.state, worker.pid, worker.succeeded) == ("running", 99, 0)


def test_rates_and_held_counts_come_from_the_backend_where_it_can_tell() -> None:
    picture = Picture(now=T0)
    picture.set_counts(counts(ready=10, unacked=2), now=T0)
    for n in range(4):
        picture.apply(task("succeeded", f"m{n}", T0 + 1 + n), now=T0 + 1 + n)
    picture.set_counts(counts(ready=16, unacked=2), now=T0 + 10)
    (queue,) = picture.queue_views(now=T0 + 10)
    assert (queue.held, queue.held_from, queue.ready) == (2, "backend", 16)
    assert queue.rate_out == 4 / 10
    assert queue.rate_in == (16 - 10 + 4) / 10  # the backlog grew by 6 while 4 left
    assert queue.rate_span == 10


def test_no_rate_from_a_single_look() -> None:
    picture = Picture(now=T0)
    picture.set_counts(counts(ready=3), now=T0)
    (queue,) = picture.queue_views(now=T0 + 0.2)
    assert (queue.rate_in, queue.rate_out, queue.wait_p50) == (None, None, None)


def test_interest_keeps_other_queues_and_their_workers_out() -> None:
    picture = Picture(["other"])
    picture.apply(beat(T0), now=T0)
    picture.apply(beat(T0, worker="w.2", queues=("other",)), now=T0)
    assert [q.name for q in picture.queue_views(now=T0)] == ["other"]
    assert [w.name for w in picture.worker_views(now=T0)] == ["w.2"]


def test_as_json_is_plain_json_with_queues_and_workers() -> None:
    picture = Picture(now=T0)
    picture.set_counts(Counts((QueueRow(Q, 1, 1, 0, delayed=1),), listed=False, delayed_in_common=None), now=T0)
    picture.apply(beat(T0, (RunningTask("m", "resize", 0, T0, True, Q),)), now=T0)
    data = json.loads(json.dumps(picture.as_json(now=T0 + 1)))
    assert [q["name"] for q in data["queues"]] == [Q]
    assert data["queues"][0]["delayed"] == 1 and data["queues"][0]["running"] == 1
    assert data["workers"][0]["running"][0]["message_id"] == "m"
    assert data["workers"][0]["lost"] is False and data["listed"] is False
