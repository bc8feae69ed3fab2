"""The live timeline's data: task events folded into lanes (one per worker slot) and bars (one per run).

Data only, no I/O: :class:`~fairq.dashboard.hub.Hub` feeds it the events a listener decodes and
sends the page what changed (:meth:`Timeline.delta`) or, to a page that just connected, all of it
(:meth:`Timeline.snapshot`). A bar opens at ``task.started`` (its slot's lane) and closes at
``task.succeeded`` / ``task.failed``; ``task.retried`` and ``task.dead-lettered`` then say how a
failure ended. Events are best-effort, so the fold repairs what it missed: a heartbeat's running
tasks open the bars of a page that joined late, a bar that two heartbeats in a row do not list is
closed as ``unknown``, and a process that goes offline closes what it had open.

Bars and lanes go to the page as short rows (``Bar.row``): at a thousand tasks a second the
names of fields would be most of the bytes.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, TaskEvent, WorkerEvent, WorkerHeartbeat, WorkerOffline

__all__ = ["OUTCOMES", "Bar", "Lane", "Timeline", "PATTERNS"]

#: What the timeline listens to: a bar's story from its start (``task.received`` is of no use here).
PATTERNS = ("task.started", "task.succeeded", "task.failed", "task.retried", "task.dead-lettered",
            "task.handed-back", "worker.#")
#: A bar's outcome: how the page colours it.
OUTCOMES = ("running", "ok", "failed", "retried", "dead", "back", "unknown")
_BY_KIND = {"succeeded": "ok", "failed": "failed", "retried": "retried", "dead-lettered": "dead",
            "handed-back": "back"}
#: Heartbeats in a row that may leave out a running bar before it is closed as ``unknown``.
_MISSED_BEATS = 2


@dataclass
class Lane:
    """One task slot of one worker process."""

    id: int
    worker: str
    process: int
    slot: int

    def row(self) -> list[Any]:
        return [self.id, self.worker, self.process, self.slot]


@dataclass
class Process:
    """What the timeline knows of one worker process: its lanes' labels, and whether it still speaks."""

    worker: str
    process: int
    node: str = ""
    host: str = ""
    slots: int = 0
    held_not_started: int = 0  #: tasks it holds that no slot has started (hoarding), from its last heartbeat
    state: str = "live"  #: ``live``, or ``offline`` after its last event
    last_seen: float = 0.0
    interval: float = 2.0

    def row(self) -> list[Any]:
        return [self.worker, self.process, self.node, self.host, self.slots, self.held_not_started, self.state,
                self.last_seen, self.interval]


@dataclass
class Bar:
    """One run of a task on one slot: from ``start`` to ``end`` (None while it runs)."""

    id: int
    lane: int
    start: float
    task: int  #: index into the timeline's task names
    message_id: str
    queue: str
    attempt: int
    wait: float | None
    end: float | None = None
    outcome: str = "running"
    missed: int = field(default=0, repr=False)  #: heartbeats in a row that did not list it while it ran

    def row(self) -> list[Any]:
        """``[id, lane, start, end, task, outcome, message_id, queue, attempt, wait]``."""
        return [self.id, self.lane, self.start, self.end, self.task, self.outcome, self.message_id, self.queue,
                self.attempt, self.wait]


class Timeline:
    """Lanes and the bars of the last ``window`` seconds (at most ``max_bars``), and what changed since
    the last :meth:`delta`."""

    def __init__(self, window: float = 300.0, max_bars: int = 100_000) -> None:
        self.window = window
        self.max_bars = max_bars
        self.lanes: dict[tuple[str, int, int], Lane] = {}
        self.processes: dict[tuple[str, int], Process] = {}
        self.names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self.bars: collections.deque[Bar] = collections.deque()  #: in the order they opened
        self._open: dict[tuple[str, int, str], Bar] = {}  #: running bars by worker, process, message id
        self._ended: dict[tuple[str, int, str], Bar] = {}  #: bars ended lately, for the outcome that follows a failure
        self._next_id = 1
        self._new_lanes: list[Lane] = []
        self._new_names = 0
        self._new_bars: dict[int, Bar] = {}
        self._ended_bars: dict[int, Bar] = {}
        self._changed_procs: dict[tuple[str, int], Process] = {}

    # -- folding ---------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        """Fold one event in."""
        if isinstance(event, TaskEvent):
            self._task(event)
        elif isinstance(event, WorkerEvent):
            self._worker(event)

    def _task(self, event: TaskEvent) -> None:
        ident = (event.worker, event.process, event.message_id)
        proc = self._process(event.worker, event.process, event.at)
        if event.kind == "started":
            if event.slot is not None:
                proc.slots = max(proc.slots, event.slot + 1)
                self._open_bar(ident, event.slot, event.at, event.task, event.queue, event.attempt, event.wait)
            return
        outcome = _BY_KIND.get(event.kind)
        if outcome is None:
            return
        bar = self._open.pop(ident, None)
        if bar is not None:
            bar.end = event.at
        elif event.kind in ("succeeded", "failed") and event.slot is not None and event.run is not None:
            # Its start was not seen (a page that joined late, a dropped event): drawn from its run time.
            bar = self._open_bar(ident, event.slot, event.at - event.run, event.task, event.queue, event.attempt,
                                 event.wait, running=False)
            bar.end = event.at
        else:
            bar = self._ended.get(ident)  # a failure's retry or dead letter, after its end
            if bar is None:
                return
        bar.outcome = outcome
        self._ended[ident] = bar
        if len(self._ended) > 10_000:
            self._ended.pop(next(iter(self._ended)))
        if bar.id not in self._new_bars:
            self._ended_bars[bar.id] = bar

    def _worker(self, event: WorkerEvent) -> None:
        proc = self._process(event.worker, event.process, event.at)
        self._changed_procs[(proc.worker, proc.process)] = proc  # at least its last_seen: the page judges it lost by that
        proc.node, proc.host, proc.interval = event.node, event.host, event.interval or proc.interval
        proc.slots = max(proc.slots, event.slots)
        proc.state = "offline" if isinstance(event, WorkerOffline) else "live"
        for slot in range(proc.slots):
            self._lane(event.worker, event.process, slot)
        if isinstance(event, WorkerHeartbeat):
            proc.held_not_started = event.held_not_started
            self._check_running(event)
        elif isinstance(event, WorkerOffline):
            proc.held_not_started = 0
            for ident in [i for i in self._open if i[:2] == (event.worker, event.process)]:
                self._close(self._open.pop(ident), event.at, "back")

    def _check_running(self, beat: WorkerHeartbeat) -> None:
        """Open what the heartbeat runs that no bar shows; close what it has stopped running unseen."""
        listed = set()
        for running in beat.running:
            ident = (beat.worker, beat.process, running.message_id)
            listed.add(ident)
            bar = self._open.get(ident)
            if bar is None:
                self._open_bar(ident, running.slot, running.started, running.task, "", 0, None)
            else:
                bar.missed = 0
        for ident, bar in list(self._open.items()):
            if ident[:2] != (beat.worker, beat.process) or ident in listed or bar.start > beat.at:
                continue
            bar.missed += 1
            if bar.missed >= _MISSED_BEATS:  # its end was lost: it ends where the heartbeats stopped listing it
                del self._open[ident]
                self._close(bar, beat.at, "unknown")

    def _close(self, bar: Bar, at: float, outcome: str) -> None:
        bar.end, bar.outcome = max(at, bar.start), outcome
        if bar.id not in self._new_bars:
            self._ended_bars[bar.id] = bar

    def _process(self, worker: str, process: int, at: float) -> Process:
        proc = self.processes.get((worker, process))
        if proc is None:
            proc = self.processes[(worker, process)] = Process(worker, process)
            self._changed_procs[(worker, process)] = proc
        proc.last_seen = max(proc.last_seen, at)
        return proc

    def _lane(self, worker: str, process: int, slot: int) -> Lane:
        lane = self.lanes.get((worker, process, slot))
        if lane is None:
            lane = self.lanes[(worker, process, slot)] = Lane(len(self.lanes) + 1, worker, process, slot)
            self._new_lanes.append(lane)
        return lane

    def _name(self, task: str) -> int:
        index = self._name_ids.get(task)
        if index is None:
            index = self._name_ids[task] = len(self.names)
            self.names.append(task)
        return index

    def _open_bar(self, ident: tuple[str, int, str], slot: int, start: float, task: str, queue: str,
                  attempt: int, wait: float | None, running: bool = True) -> Bar:
        worker, process, message_id = ident
        lane = self._lane(worker, process, slot)
        bar = Bar(self._next_id, lane.id, start, self._name(task), message_id, queue, attempt, wait)
        self._next_id += 1
        self.bars.append(bar)
        self._new_bars[bar.id] = bar
        if running:
            self._open[ident] = bar
        return bar

    # -- what the page gets ------------------------------------------------------------------------

    def prune(self, now: float) -> None:
        """Forget bars that ended before the window (and the oldest beyond ``max_bars``)."""
        cutoff = now - self.window
        bars = self.bars
        while bars and ((bars[0].end is not None and bars[0].end < cutoff) or len(bars) > self.max_bars):
            bars.popleft()

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything a page needs to draw the window from scratch."""
        self.prune(now)
        return {"now": now, "window": self.window, "names": self.names,
                "lanes": [lane.row() for lane in self.lanes.values()],
                "procs": [proc.row() for proc in self.processes.values()],
                "bars": [bar.row() for bar in self.bars]}

    def delta(self, now: float) -> dict[str, Any] | None:
        """What changed since the last call (None: nothing): new lanes and names, new bars whole, and
        ``[id, end, outcome]`` for bars that were already sent."""
        if not (self._new_lanes or self._new_bars or self._ended_bars or self._changed_procs):
            return None
        out: dict[str, Any] = {"now": now}
        if self._new_names < len(self.names):
            out["names"] = {i: self.names[i] for i in range(self._new_names, len(self.names))}
            self._new_names = len(self.names)
        if self._new_lanes:
            out["lanes"] = [lane.row() for lane in self._new_lanes]
        if self._changed_procs:
            out["procs"] = [proc.row() for proc in self._changed_procs.values()]
        if self._new_bars:
            out["bars"] = [bar.row() for bar in self._new_bars.values()]
        if self._ended_bars:
            out["ends"] = [[bar.id, bar.end, bar.outcome] for bar in self._ended_bars.values()]
        self._new_lanes, self._new_bars, self._ended_bars, self._changed_procs = [], {}, {}, {}
        self.prune(now)
        return out
