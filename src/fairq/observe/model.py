"""The picture of a running fairq: every queue and every worker, folded from events, heartbeats and counts.

``fairq status``, ``fairq top`` and the dashboard all read one :class:`Picture` (data only;
each draws it its own way). It is fed three things, each the best source for its part:

- **task events** (received, started, succeeded, …): which deliveries each worker process
  holds and runs, from moment to moment, and the last minute's traffic per queue (tasks out,
  queue waits);
- **heartbeats**: the truth about a worker process as of its last beat — what it runs, how
  many it holds unstarted, its counters, its window — which also repairs whatever task
  events were dropped on the way (events are best-effort) or sent before a listener joined;
  a process whose beats stop without an offline event is *lost*;
- **counts** from the backend (:mod:`.counts`): ready, consumers, dead letters, delayed, and
  unacked where the backend can tell.

Per queue, ``held`` is the backend's unacked count where it has one, else what the live
workers report holding; ``running`` and ``held_not_started`` always come from the workers.
``rate_in`` is worked out as what left the queue plus how much its backlog (ready + held +
delayed) grew, over the time watched (up to a minute): an estimate that needs two counts.

Times: a worker's own clock stamps its events (``started``); ages (heartbeat age, lost) are
measured on this process's clock from when an event arrived, so a skewed worker clock never
makes a live worker look lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events.emitter import DEFAULT_HEARTBEAT
from ..events.model import Counters, Event, TaskEvent, WorkerEvent, WorkerHeartbeat, WorkerOffline
from .counts import Counts, QueueRow
from .window import MINUTE, Recent, percentile

__all__ = ["LOST_AFTER_BEATS", "Picture", "QueueView", "RunningView", "WorkerView", "lost_after"]

#: A worker process is lost after this many heartbeat intervals without a word (and at least a second more
#: than one interval).
LOST_AFTER_BEATS = 3
#: Seconds a lost worker stays in the picture, and a worker that went offline.
KEEP_LOST = 300.0
KEEP_OFFLINE = 30.0
#: Shortest time watched before a rate is given (a rate over a few milliseconds says nothing).
MIN_RATE_SPAN = 1.0
#: Task event kinds after which a delivery has left its queue for good (acked).
_SETTLED = frozenset({"succeeded", "retried", "dead-lettered"})


def lost_after(interval: float) -> float:
    """Seconds of silence after which a worker process with this heartbeat interval counts as lost."""
    return max(LOST_AFTER_BEATS * interval, interval + 1.0)


@dataclass(frozen=True)
class RunningView:
    """One task a worker process runs now."""

    message_id: str
    task: str
    queue: str  #: "" when the worker did not say (older worker, or known only from its heartbeat)
    slot: int | None
    started: float  #: the worker's ``time.time()`` when it started
    elapsed: float  #: seconds it has run


@dataclass(frozen=True)
class WorkerView:
    """One worker process as last heard of."""

    name: str  #: the process's name (``--name`` numbered per process, else ``HOST.PID``)
    process: int  #: its number within its ``fairq worker``
    node: str  #: the ``fairq worker`` it belongs to
    host: str
    pid: int
    processes: int
    slots: int
    policy: str
    window: int  #: its prefetch window at the last heartbeat (0: no cap)
    parked: bool
    queues: tuple[str, ...]
    #: ``running``, ``stopping``, ``aborting``, ``reconnecting``, ``offline`` (stopped cleanly) or ``lost``
    #: (stopped sending heartbeats).
    state: str
    running: tuple[RunningView, ...]
    held: int  #: deliveries it holds unsettled
    held_not_started: int  #: of those, tasks no slot has started: the hoarding figure
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    handed_back: int
    heartbeat_age: float | None  #: seconds since its last heartbeat arrived; None before the first
    broker: str  #: the broker it is connected to, as the worker tells it (no password)
    broker_node: str  #: the node of a cluster it is connected to (``host:port``); "" where the worker did not say
    version: str
    dropped: int  #: events it dropped (its last heartbeat's count)

    @property
    def lost(self) -> bool:
        return self.state == "lost"

    @property
    def live(self) -> bool:
        return self.state not in ("lost", "offline")


@dataclass(frozen=True)
class QueueView:
    """One queue: the backend's counts and what the workers report of it. None where nobody can tell."""

    name: str
    exists: bool
    kind: str | None
    ready: int | None
    #: Delivered to consumers and not yet settled: the backend's unacked count where it has one, else the
    #: workers' (``held_from`` says which).
    held: int | None
    held_from: str  #: ``backend`` or ``workers``
    running: int
    held_not_started: int
    consumers: int | None
    delayed: int | None
    dead_lettered: int | None
    rate_in: float | None  #: messages per second entering the queue, over ``rate_span`` (an estimate)
    rate_out: float | None  #: deliveries settled per second (acked: succeeded, retried, dead-lettered)
    rate_span: float  #: seconds the rates and waits cover (up to a minute)
    wait_p50: float | None  #: seconds from send to start, of the tasks started in ``rate_span``
    wait_p99: float | None
    workers: tuple[str, ...]  #: live worker processes consuming it


@dataclass
class _Flight:
    """One delivery a worker process holds."""

    queue: str
    task: str
    started: float | None = None
    slot: int | None = None
    done: bool = False  #: it ran (failed) and is being settled


@dataclass
class _Worker:
    name: str
    process: int
    seen: float  #: local time of its last event
    identity: WorkerEvent | None = None
    heartbeat: WorkerHeartbeat | None = None
    beat_seen: float | None = None
    offline_at: float | None = None
    counters: dict[str, int] = field(default_factory=dict)  #: since the last heartbeat, from task events
    flights: dict[str, _Flight] = field(default_factory=dict)
    unseen_waiting: int = 0  #: held unstarted per its heartbeat, beyond the task events seen
    task_queues: dict[str, None] = field(default_factory=dict)  #: queues its task events named

    @property
    def interval(self) -> float:
        return self.identity.interval if self.identity is not None and self.identity.interval > 0 else DEFAULT_HEARTBEAT

    @property
    def queues(self) -> tuple[str, ...]:
        """What it consumes: as it announced, else (before its first heartbeat) what its tasks came from."""
        return self.identity.queues if self.identity is not None else tuple(self.task_queues)

    def state(self, now: float) -> str:
        if self.offline_at is not None:
            return "offline"
        if now - self.seen > lost_after(self.interval):
            return "lost"
        beat = self.heartbeat
        if beat is None:
            return "running"
        return beat.state if beat.connected or beat.state != "running" else "reconnecting"


_COUNTED = {"succeeded": "succeeded", "failed": "failed", "retried": "retried", "dead-lettered": "dead_lettered",
            "handed-back": "handed_back"}


class Picture:
    """Every queue and worker process, kept up to date by :meth:`apply` (events) and :meth:`set_counts`.

    ``queues``: the queues of interest (others are left out of :meth:`queue_views`, and workers that
    consume none of them out of :meth:`worker_views`); empty: all there are. Not thread-safe: feed and
    read it from one thread (the Observer's loop).
    """

    def __init__(self, queues: Sequence[str] = (), *, now: float | None = None) -> None:
        self.interest = tuple(dict.fromkeys(queues))
        self.since = time.time() if now is None else now
        self.counts: Counts | None = None
        self.counts_at: float | None = None
        self.events = 0  #: events applied so far
        self._workers: dict[str, _Worker] = {}
        self._out: dict[str, Recent] = {}
        self._waits: dict[str, Recent] = {}
        self._backlog: dict[str, Recent] = {}
        self._seen_queues: dict[str, None] = {}

    # -- feeding ---------------------------------------------------------------------------------

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one event in (``now``: when it arrived, on this process's clock)."""
        now = time.time() if now is None else now
        self.events += 1
        worker = self._worker(event, now)
        if isinstance(event, TaskEvent):
            self._task(worker, event, now)
        else:
            self._worker_event(worker, event, now)

    def set_counts(self, counts: Counts, now: float | None = None) -> None:
        """The backend's latest counts; also a sample of each queue's backlog, for ``rate_in``."""
        now = time.time() if now is None else now
        self.counts, self.counts_at = counts, now
        held = self._held_by_queue(now)
        for row in counts.rows:
            if row.exists and row.ready is not None:
                backlog = row.ready + (row.unacked if row.unacked is not None else held.get(row.name, 0))
                self._recent(self._backlog, row.name).add(now, backlog + (row.delayed or 0))

    def _worker(self, event: Event, now: float) -> _Worker:
        worker = self._workers.get(event.worker)
        if isinstance(event, WorkerEvent) and worker is not None and worker.identity is not None \
                and (worker.identity.pid, worker.identity.host) != (event.pid, event.host):
            worker = None  # the same name on a new process (restarted): a new worker
        if worker is None:
            worker = self._workers[event.worker] = _Worker(event.worker, event.process, now)
        worker.seen = now
        return worker

    def _task(self, worker: _Worker, event: TaskEvent, now: float) -> None:
        kind, flights = event.kind, worker.flights
        self._seen_queues.setdefault(event.queue)
        worker.task_queues.setdefault(event.queue)
        if kind == "received":
            flights[event.message_id] = _Flight(event.queue, event.task)
            return
        if kind == "started":
            flight = flights.setdefault(event.message_id, _Flight(event.queue, event.task))
            flight.started, flight.slot = event.at, event.slot
            if event.wait is not None:
                self._recent(self._waits, event.queue).add(now, event.wait)
            return
        counter = _COUNTED.get(kind)
        if counter is not None:
            worker.counters[counter] = worker.counters.get(counter, 0) + 1
        if kind in _SETTLED:
            self._recent(self._out, event.queue).add(now)
        if kind == "failed":
            ran = flights.get(event.message_id)
            if ran is not None:
                ran.done = True
        else:
            flights.pop(event.message_id, None)

    def _worker_event(self, worker: _Worker, event: WorkerEvent, now: float) -> None:
        worker.identity = event
        worker.process = event.process
        for queue in event.queues:
            self._seen_queues.setdefault(queue)
        if isinstance(event, WorkerOffline):
            worker.offline_at = now
            worker.flights.clear()
            worker.unseen_waiting = 0
            return
        worker.offline_at = None
        if not isinstance(event, WorkerHeartbeat):
            return  # online: who it is; nothing held yet
        worker.heartbeat, worker.beat_seen = event, now
        worker.counters.clear()
        # Everything the process did before this beat has arrived (a flush sends task events first):
        # what it runs is exactly the beat's list, and it holds no more unstarted than the beat says.
        flights = worker.flights
        running = {r.message_id: r for r in event.running}
        for message_id in [m for m, f in flights.items() if f.started is not None and m not in running]:
            del flights[message_id]
        for r in event.running:
            flight = flights.setdefault(r.message_id, _Flight(r.queue, r.task))
            flight.started, flight.slot, flight.done = r.started, r.slot, False
            flight.queue = flight.queue or r.queue
        waiting = [m for m, f in flights.items() if f.started is None]
        for message_id in waiting[:max(0, len(waiting) - event.held_not_started)]:  # the oldest went unseen
            del flights[message_id]
        worker.unseen_waiting = max(0, event.held_not_started - len(waiting))

    @staticmethod
    def _recent(table: dict[str, Recent], queue: str) -> Recent:
        recent = table.get(queue)
        if recent is None:
            recent = table[queue] = Recent()
        return recent

    # -- reading ---------------------------------------------------------------------------------

    def _live(self, now: float) -> list[_Worker]:
        self._forget(now)
        return [w for w in self._workers.values() if w.state(now) not in ("lost", "offline")]

    def _forget(self, now: float) -> None:
        for name, worker in list(self._workers.items()):
            if worker.offline_at is not None and now - worker.offline_at > KEEP_OFFLINE:
                del self._workers[name]
            elif now - worker.seen > KEEP_LOST + lost_after(worker.interval):
                del self._workers[name]

    def _held_by_queue(self, now: float) -> dict[str, int]:
        held: dict[str, int] = {}
        for worker in self._live(now):
            for flight in worker.flights.values():
                held[flight.queue] = held.get(flight.queue, 0) + 1
            if worker.unseen_waiting and len(worker.queues) == 1:
                held[worker.queues[0]] = held.get(worker.queues[0], 0) + worker.unseen_waiting
        return held

    def _wanted(self, queues: Iterable[str]) -> bool:
        return not self.interest or any(q in self.interest for q in queues)

    def queue_names(self) -> list[str]:
        """The queues in the picture: those of interest, else every one counted, announced or seen in events."""
        if self.interest:
            return list(self.interest)
        names = dict.fromkeys(row.name for row in self.counts.rows) if self.counts is not None else {}
        for queue in self._seen_queues:
            names.setdefault(queue)
        return [name for name in names if name]

    def worker_views(self, now: float | None = None) -> list[WorkerView]:
        """Every worker process heard of (lost ones for a while, offline ones briefly), by name."""
        now = time.time() if now is None else now
        self._forget(now)
        views = [self._worker_view(w, now) for w in self._workers.values()]
        return sorted((v for v in views if self._wanted(v.queues) or not v.queues), key=lambda v: v.name)

    def _worker_view(self, worker: _Worker, now: float) -> WorkerView:
        who, beat = worker.identity, worker.heartbeat
        state = worker.state(now)
        live = state not in ("lost", "offline")
        running = tuple(sorted(
            (RunningView(m, f.task, f.queue, f.slot, f.started, max(0.0, now - f.started))
             for m, f in worker.flights.items() if f.started is not None and not f.done),
            key=lambda r: (r.slot if r.slot is not None else -1, r.started))) if live else ()
        waiting = sum(1 for f in worker.flights.values() if f.started is None) + worker.unseen_waiting
        base = beat.counters if beat is not None else Counters()
        offline = who.counters if isinstance(who, WorkerOffline) else None
        counts = {name: (getattr(offline, name) if offline is not None
                         else getattr(base, name) + worker.counters.get(name, 0))
                  for name in ("succeeded", "failed", "retried", "dead_lettered", "handed_back")}
        return WorkerView(
            name=worker.name, process=worker.process, node=who.node if who else "", host=who.host if who else "",
            pid=who.pid if who else 0, processes=who.processes if who else 1, slots=who.slots if who else 0,
            policy=who.policy if who else "", window=beat.window if beat else 0, parked=bool(beat and beat.parked),
            queues=worker.queues, state=state, running=running,
            held=len(worker.flights) + worker.unseen_waiting if live else 0,
            held_not_started=waiting if live else 0, **counts,
            heartbeat_age=None if worker.beat_seen is None else max(0.0, now - worker.beat_seen),
            broker=who.broker if who else "", broker_node=who.broker_node if who else "", version=who.version if who else "",
            dropped=beat.dropped if beat else 0)

    def queue_views(self, now: float | None = None) -> list[QueueView]:
        """Every queue of :meth:`queue_names`, in that order."""
        now = time.time() if now is None else now
        live = self._live(now)
        held = self._held_by_queue(now)
        span = min(MINUTE, now - self.since)
        views = []
        for name in self.queue_names():
            row = self.counts.row(name) if self.counts is not None else None
            running = waiting = 0
            for worker in live:
                for flight in worker.flights.values():
                    if flight.queue == name:
                        if flight.started is None:
                            waiting += 1
                        elif not flight.done:
                            running += 1
                if worker.unseen_waiting and worker.queues == (name,):
                    waiting += worker.unseen_waiting
            views.append(self._queue_view(name, row, held.get(name, 0), running, waiting, span, now,
                                          tuple(w.name for w in live if name in w.queues)))
        return views

    def _queue_view(self, name: str, row: QueueRow | None, held: int, running: int, waiting: int, span: float,
                    now: float, workers: tuple[str, ...]) -> QueueView:
        waits = self._waits[name].values(now) if name in self._waits else []
        out = self._out.get(name)
        rate_out = (out.total(now) if out else 0.0) / span if span >= MIN_RATE_SPAN else None
        by_backend = row is not None and row.unacked is not None
        return QueueView(
            name=name, exists=row.exists if row is not None else bool(workers), kind=row.kind if row else None,
            ready=row.ready if row else None, held=row.unacked if by_backend and row else held,
            held_from="backend" if by_backend else "workers", running=running, held_not_started=waiting,
            consumers=row.consumers if row else None, delayed=row.delayed if row else None,
            dead_lettered=row.dead_lettered if row else None, rate_in=self._rate_in(name, now), rate_out=rate_out,
            rate_span=max(0.0, span), wait_p50=percentile(waits, 50), wait_p99=percentile(waits, 99),
            workers=workers)

    def _rate_in(self, name: str, now: float) -> float | None:
        """(backlog growth + what was settled) / time, between the oldest backlog sample of the last minute
        and the newest."""
        samples = self._backlog.get(name)
        first = samples.first(now) if samples else None
        if samples is None or first is None or self.counts_at is None:
            return None
        last_at = self.counts_at
        span = last_at - first[0]
        if span < MIN_RATE_SPAN:
            return None
        last = samples.values(now)[-1]
        out = self._out.get(name)
        settled = out.total(now, since=first[0]) if out else 0.0
        return max(0.0, (last - first[1] + settled) / span)

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        """The picture as JSON-ready data (``fairq status --json``; docs/status.md has the fields)."""
        now = time.time() if now is None else now
        counts = self.counts
        workers = []
        for view in self.worker_views(now):
            item = asdict(view)
            item["lost"] = view.lost
            workers.append(item)
        return {
            "at": now,
            "watched": max(0.0, now - self.since),
            "queues": [asdict(view) for view in self.queue_views(now)],
            "workers": workers,
            "listed": counts.listed if counts is not None else False,
            "delayed_in_common": counts.delayed_in_common if counts is not None else None,
        }
