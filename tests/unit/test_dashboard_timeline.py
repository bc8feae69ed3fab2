"""The timeline's fold of task events into lanes and bars, and how it mends what events it missed."""

from __future__ import annotations

from fairq.dashboard.timeline import Timeline
from fairq.events import RunningTask, TaskEvent, WorkerHeartbeat, WorkerOffline, WorkerOnline

W = "host.1"


def task(kind: str, at: float, message_id: str = "m1", slot: int | None = 0, **fields: object) -> TaskEvent:
    return TaskEvent(kind=kind, worker=W, process=1, at=at, message_id=message_id, task="resize", queue="images",
                     attempt=1, slot=slot, **fields)  # type: ignore[arg-type]


def beat(at: float, *running: RunningTask, held: int = 0) -> WorkerHeartbeat:
    return WorkerHeartbeat(kind="heartbeat", worker=W, process=1, at=at, host="host", pid=1, slots=2, interval=2.0,
                           running=running, held_not_started=held)


def test_a_run_is_a_bar_from_its_start_to_its_end_on_its_slots_lane() -> None:
    timeline = Timeline()
    timeline.add(WorkerOnline(kind="online", worker=W, process=1, at=99.0, host="host", pid=1, slots=2))
    first = timeline.delta(99.0)
    assert first is not None and [lane[3] for lane in first["lanes"]] == [0, 1]  # a lane per slot, idle ones too
    timeline.add(task("started", 100.0, slot=1, wait=0.5))
    started = timeline.delta(100.1)
    assert started is not None
    [bar] = started["bars"]
    assert bar[1] == first["lanes"][1][0] and bar[2] == 100.0 and bar[3] is None and bar[5] == "running"
    assert started["names"] == {0: "resize"}
    timeline.add(task("succeeded", 101.5, slot=1, run=1.5))
    ended = timeline.delta(101.6)
    assert ended is not None and ended["ends"] == [[bar[0], 101.5, "ok"]] and "bars" not in ended
    assert timeline.delta(101.7) is None


def test_a_failure_takes_the_outcome_that_follows_it() -> None:
    timeline = Timeline()
    timeline.add(task("started", 1.0))
    timeline.add(task("failed", 2.0, run=1.0, error="ValueError: x"))
    timeline.add(task("dead-lettered", 2.1, slot=None, reason="task failed"))
    [bar] = timeline.snapshot(3.0)["bars"]
    assert bar[3] == 2.0 and bar[5] == "dead"


def test_an_end_whose_start_was_missed_is_drawn_from_its_run_time() -> None:
    timeline = Timeline()
    timeline.add(task("succeeded", 10.0, run=4.0))
    [bar] = timeline.snapshot(11.0)["bars"]
    assert (bar[2], bar[3], bar[5]) == (6.0, 10.0, "ok")


def test_a_late_page_sees_what_a_heartbeat_says_runs_and_a_lost_end_is_closed_after_two_beats() -> None:
    timeline = Timeline()
    timeline.add(beat(50.0, RunningTask("m9", "resize", 1, 45.0, True), held=3))
    snap = timeline.snapshot(50.0)
    [bar] = snap["bars"]
    assert (bar[2], bar[3], bar[6]) == (45.0, None, "m9")
    assert snap["procs"][0][5] == 3  # held, not started: the hoarding badge
    timeline.add(beat(52.0))
    assert timeline.snapshot(52.0)["bars"][0][3] is None  # one beat without it: its end may still be on its way
    timeline.add(beat(54.0))
    [bar] = timeline.snapshot(54.0)["bars"]
    assert (bar[3], bar[5]) == (54.0, "unknown")


def test_going_offline_closes_what_was_open() -> None:
    timeline = Timeline()
    timeline.add(task("started", 1.0))
    timeline.add(WorkerOffline(kind="offline", worker=W, process=1, at=3.0, host="host", pid=1))
    snap = timeline.snapshot(3.0)
    assert snap["bars"][0][3] == 3.0 and snap["bars"][0][5] == "back"
    assert snap["procs"][0][6] == "offline"


def test_bars_older_than_the_window_are_forgotten() -> None:
    timeline = Timeline(window=60.0)
    timeline.add(task("started", 1.0, message_id="old"))
    timeline.add(task("succeeded", 2.0, message_id="old", run=1.0))
    timeline.add(task("started", 50.0, message_id="new"))
    assert [bar[6] for bar in timeline.snapshot(100.0)["bars"]] == ["new"]
