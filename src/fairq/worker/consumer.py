"""One worker process's engine: consume, run tasks in slots, settle each delivery once.

Every delivery ends in exactly one of: ack (done), retry (a delayed copy, then
ack), dead letter (a copy in QUEUE.dlq, then ack) or requeue (not started before
shutdown). Copies are always confirmed before the original is acked, so a crash
in between duplicates rather than loses. Acks are sent from the event loop,
which owns the connection; sync tasks run on a thread pool and hand their
outcome back to it. A lost connection is re-established with backoff; a task
that finishes while its delivery's channel is gone hands its result to the
redelivered copy instead of running twice here.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import message as wire
from ..backoff import Backoff
from ..broker import Broker, Consumer, Delivery, QueueSpec, connect_url
from ..config import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_MESSAGE_BYTES
from ..errors import BrokerError, ChannelClosed, DecodeError, LoginRefused, TaskNotFound, TimeLimitExceeded
from ..logs import BANNER
from ..task import Task
from . import duplicates, tasklog
from .adaptive import AdaptiveWindow
from .policy import DEFAULT_POLICY, Prefetch
from .settlement import ACK, Outcome, Remembered, Settlement, after_failure, dead
from .labelled import Labelled, was_handed_back
from .threads import NotStarted, ThreadRunner

log = logging.getLogger("fairq.worker")

#: Name of the worker running the current task (readable from inside tasks and raw handlers).
current_worker: contextvars.ContextVar[str] = contextvars.ContextVar("fairq_worker", default="")

RawHandler = Callable[[bytes], Any]

#: How often a worker whose slots all run long tasks asks how much its queues hold (a passive declare).
PARK_POLL = 0.05
#: A watchdog tick this late means the whole process did not run meanwhile (a busy host): the time
#: its tasks have been running says nothing about them on that tick.
STALL = 0.01


@dataclass(frozen=True)
class TaskEvent:
    """A task started or finished on a worker; feeds the demo, stats and logs."""

    kind: str  #: "start" or "finish"
    worker: str
    queue: str
    message_id: str
    task: str  #: task name, or "raw" for plain messages
    at: float  #: time.time()
    outcome: str = ""  #: on finish: "ok", "retry", "dead-lettered"
    seconds: float = 0.0  #: on finish: how long it ran


Observer = Callable[[TaskEvent], None]


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # no new tasks; running ones get a grace period
    ABORTING = "aborting"  # drop everything; the broker redelivers what was unacked


def _is_consumer_timeout(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, ChannelClosed) and ("acknowledgement" in text and "timed out" in text)


class Worker:
    """Consumes ``queues`` with ``threads`` task slots until :meth:`stop` or :meth:`abort`."""

    def __init__(
        self,
        *,
        broker_url: str,
        queues: Sequence[QueueSpec],
        tasks: Mapping[str, Task[Any, Any]],
        name: str,
        threads: int = 1,
        prefetch: Prefetch = Prefetch(DEFAULT_POLICY),
        raw_handler: RawHandler | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        grace_seconds: float = 30.0,
        observer: Observer | None = None,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.name = name
        self.queues = list(queues)
        self.tasks = tasks
        self.threads = threads
        self.prefetch = prefetch
        self.raw_handler = raw_handler
        self.max_message_bytes = max_message_bytes
        self.delivery_limit = delivery_limit
        self.grace_seconds = grace_seconds
        self.observer = observer
        self.rng = rng
        self.broker_url = broker_url
        self.broker: Broker = connect_url(broker_url)
        self.state = State.RUNNING
        #: Set when a sync task overran its time limit: its thread cannot be stopped, so the process must go.
        self.recycle = False
        #: Set once every consumer is registered with the broker (again after each reconnect).
        self.ready = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._runner: ThreadRunner | None = None
        self._async_free = threads
        self._async_waiters: deque[asyncio.Future[None]] = deque()
        self._async_started: dict[asyncio.Task[Any], float] = {}
        #: ``--prefetch adaptive``: the window logic, fed with task times and refill gaps.
        self.adaptive = AdaptiveWindow(threads) if prefetch.policy == "adaptive" else None
        self._window = prefetch.count(threads)
        self._held = 0  # deliveries handed to _handle and not yet settled
        self._credit_at: float | None = None  # when a slot freed credit with nothing in hand
        self._reconsuming = False
        #: adaptive: every slot runs a long task, so the consumers are cancelled and what waited here went
        #: back to the queue; consume again once a slot frees (:meth:`_park`).
        self._parked = False
        self._checking_queues = False  # _park_once_queues_short is running
        self._noted_async: set[asyncio.Task[Any]] = set()  # running async tasks already counted as long
        self._inflight: dict[tuple[str, int], asyncio.Future[Settlement]] = {}
        self._orphans = Remembered()
        #: Redeliveries settled with the result of a run here instead of running again (duplicates.py).
        self.duplicates_suppressed = 0
        self._consumers: list[Consumer] = []
        self._wake: asyncio.Event | None = None
        self._watching = False  # time limits or an adaptive window to watch (set by run)
        self._tick: asyncio.TimerHandle | None = None  # the watchdog's next tick, while there is work to watch

    # -- control (call on the worker's loop) ----------------------------------------------

    def stop(self) -> None:
        """Graceful: take nothing new, hand back unstarted tasks, let running ones finish.

        A second call aborts."""
        self.state = State.STOPPING if self.state is State.RUNNING else State.ABORTING
        if self._wake is not None:
            self._wake.set()

    def abort(self) -> None:
        """Stop now; unfinished tasks are redelivered elsewhere by the broker."""
        self.state = State.ABORTING
        if self._wake is not None:
            self._wake.set()

    # -- sessions ------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped, reconnecting after losses. Raises LoginRefused if credentials are wrong."""
        self._wake = asyncio.Event()
        self._runner = ThreadRunner(self.threads, f"fairq-{self.name}")
        self._watching = self._limits() or self.adaptive is not None
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._open()
                    backoff.reset()
                    lost = await self._serve()
                except LoginRefused:
                    raise
                except BrokerError as exc:
                    lost = exc
                if lost is None or self.state is not State.RUNNING:
                    return
                await self._discard_session(lost)
                pause = backoff.next()
                if pause:
                    log.warning("%s: reconnecting to %s in %.1f s", self.name, self.broker.display_url, pause)
                if not await self._pause(pause):
                    return
        finally:
            self._watching = False
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None
            self._runner.reclaim()
            self._runner.stop()
            await self.broker.close()

    async def _open(self) -> None:
        await self.broker.connect()
        for spec in self.queues:
            await self.broker.declare(spec)
        count = self._window
        for spec in self.queues:
            self._consumers.append(await self.broker.consume(spec.name, count, self._on_delivery))
        BANNER.info("%s consuming %s (threads=%d, prefetch=%s → %s) from %s", self.name,
                    ", ".join(q.name for q in self.queues), self.threads, self.prefetch, count or "no cap",
                    self.broker.display_url)
        self.ready.set()

    async def _serve(self) -> BaseException | None:
        """Wait for a stop (then shut down in order, return None) or a loss (return its cause)."""
        assert self._wake is not None
        lost = asyncio.ensure_future(self.broker.wait_lost())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waker, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not lost.done():
                lost.cancel()
        if self.state is State.RUNNING and lost.done():
            return lost.result()
        await self._shutdown()
        return None

    async def _discard_session(self, cause: BaseException) -> None:
        """Forget a dead connection: its unacked deliveries are back in the queue already."""
        self.ready.clear()
        if _is_consumer_timeout(cause):
            log.error("%s: RabbitMQ's consumer_timeout closed the channel while a task ran longer than it allows; "
                      "the broker requeued the delivery. This worker will not run it twice: a redelivered copy "
                      "that comes back here waits for the running task's result. Raise consumer_timeout in "
                      "rabbitmq.conf above your longest task (milliseconds), or on RabbitMQ 3.12+ give the "
                      "task a time_limit so fairq sets x-consumer-timeout on new queues.", self.name)
        else:
            log.warning("%s: lost the broker: %s", self.name, cause)
        self._consumers.clear()
        self._parked = False  # the next session consumes afresh
        self._give_back_unstarted()  # their deliveries died with the channel: the broker has them again
        await self.broker.close()
        self.broker = connect_url(self.broker_url)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if still running."""
        assert self._wake is not None
        if seconds > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        return self.state is State.RUNNING

    async def _shutdown(self) -> None:
        assert self._wake is not None
        # Stop taking work first, then return what was prefetched, then wait for the running tasks:
        # the connection stays open all along, so heartbeats go on and acks can still be sent.
        for consumer in self._consumers:
            try:
                await consumer.cancel()
            except BrokerError as exc:
                log.warning("%s: cancelling consumer: %s", self.name, exc)
        self._give_back_unstarted()
        if self._running and self.state is State.STOPPING:
            log.info("%s: waiting up to %.0f s for %d running task(s)", self.name, self.grace_seconds, len(self._running))
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            running = asyncio.ensure_future(asyncio.wait(set(self._running)))
            await asyncio.wait({waker, running}, timeout=self.grace_seconds, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            running.cancel()
        if self._running:
            log.warning("%s: aborting %d unfinished task(s); the broker will redeliver them", self.name, len(self._running))

    def _give_back_unstarted(self, republish: bool = False, once: bool = False) -> None:
        """Every prefetched task not started yet is settled as not started (its handler requeues,
        republishes or, if its channel is gone, drops it). ``once``: sync tasks handed back before
        stay: each hand-back sends a task to the back of the queue, so one passed on from worker to
        worker would run after everything sent meanwhile."""
        assert self._runner is not None
        self._runner.reclaim(republish, was_handed_back if once else None)
        while self._async_waiters:
            waiter = self._async_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(NotStarted(republish))

    # -- dispatch ------------------------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery) -> None:
        if self.state is not State.RUNNING:
            await delivery.requeue()
            return
        if self.adaptive is not None and self._credit_at is not None:
            if not self.adaptive.deep:
                self.adaptive.refilled(time.monotonic() - self._credit_at)
            self._credit_at = None
        self._held += 1
        if self._tick is None and self._watching:
            self._schedule_tick()
        # Its own task, not aiormq's: aiormq cancels consumer tasks when a channel closes,
        # and a running task's result must outlive its channel.
        task = asyncio.ensure_future(self._handle(delivery))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._held -= 1
        # Refill gaps are sampled in a fair window only: there each one is a full broker round trip.
        if self.adaptive is not None and not self.adaptive.deep and self._credit_at is None and self._starving():
            self._credit_at = time.monotonic()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: internal error settling a delivery", self.name, exc_info=task.exception())

    async def _async_slot(self) -> None:
        """Wait for one of the ``threads`` slots async tasks share (raises NotStarted if given back)."""
        if self._async_free > 0:
            self._async_free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._async_waiters.append(waiter)
        await waiter

    def _async_release(self) -> None:
        while self._async_waiters:
            waiter = self._async_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._async_free += 1

    def _starving(self) -> bool:
        """A slot is free, nothing waits to start, and the window has room: the broker owes us a task."""
        assert self._runner is not None
        return (self._held < self._window and not self._async_waiters and self._runner.queued == 0
                and len(self._runner.running) + len(self._async_started) < self.threads)

    def _limits(self) -> bool:
        return any(t.time_limit for t in self.tasks.values())

    def _schedule_tick(self) -> None:
        """Watch the running tasks every 0.1 s (0.02 s in a deep window), but only while this worker holds
        a delivery or is parked: an idle worker is not woken 10 to 50 times a second for nothing."""
        interval = 0.02 if self.adaptive is not None and self.adaptive.deep else 0.1
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        self._tick = loop.call_at(due, self._watch_running, due)

    def _watch_running(self, due: float) -> None:
        """A watchdog tick: sync tasks past their time limit are abandoned (a thread cannot be
        interrupted: this process is then replaced); when every slot of a deep adaptive window runs a
        long task, the worker parks. Long tasks are judged only on a tick that came on time (within
        ``STALL`` of ``due``): a late one means the whole process was held up, not its tasks."""
        assert self._runner is not None
        self._tick = None
        on_time = asyncio.get_running_loop().time() - due < STALL
        now = time.time()
        for job in list(self._runner.running):
            fn = job.fn
            limit = fn.time_limit if isinstance(fn, Labelled) else None
            if limit and now - job.started > limit and not job.future.done():
                assert isinstance(fn, Labelled)
                job.future.set_exception(TimeLimitExceeded(f"{fn.label} ran over its time limit of {limit:g} s"))
                self._abandon_thread(fn.label)
        if self.adaptive is not None and on_time:
            self._note_long_running(now)
        if (self.adaptive is not None and self.adaptive.deep and on_time and not self._parked
                and not self._reconsuming and not self._checking_queues and self._all_slots_long()):
            self._checking_queues = True
            asyncio.ensure_future(self._park_once_queues_short())
        elif self._parked and self.ready.is_set() and self._has_free_slot():
            self._unpark()  # normally done as the slot frees; this catches a park that ended meanwhile
        if self._watching and (self._held or self._parked):
            self._schedule_tick()

    def _adapt(self, window: int) -> None:
        """Replace the consumers by ones with prefetch ``window`` (quorum queues fix it per consumer)."""
        if self._reconsuming or self.state is not State.RUNNING or window == self._window:
            return
        if self.adaptive is not None:
            self.adaptive.changed(window, time.monotonic())
        self._reconsuming = True
        deeper = window > self._window and not self._parked
        self._window = window
        if window == self.threads:
            # Back to fair: tasks turned long, so what waits here would wait long; it goes back to the
            # queue (as fresh copies) for idle workers. A smaller deep window keeps its short tasks: a
            # copy waits at the back of the queue, behind work sent after it.
            self._give_back_unstarted(republish=True)
        asyncio.ensure_future(self._reconsume(window, deeper))

    def _note_long_running(self, now: float) -> None:
        """Tell the window about tasks running past its threshold, once each, while they still run."""
        assert self._runner is not None and self.adaptive is not None
        long_after = self.adaptive.long_after
        for job in list(self._runner.running):
            if not job.noted_long and job.started and now - job.started > long_after:
                job.noted_long = True
                self.adaptive.running_long()
        for task, started in list(self._async_started.items()):
            if task not in self._noted_async and now - started > long_after:
                self._noted_async.add(task)
                self.adaptive.running_long()

    def _all_slots_long(self) -> bool:
        assert self._runner is not None and self.adaptive is not None
        started = [job.started for job in self._runner.running] + list(self._async_started.values())
        return len(started) >= self.threads and self.adaptive.should_park(time.time() - max(started))

    async def _park_once_queues_short(self) -> None:
        """Every slot runs a long task. While the queues hold more than a window's worth, this full window
        is a fixed prefetch: the other workers have the backlog, and what waits here would wait longer at
        its back. Once they hold less (a window is sized to last a few round trips), a copy at the back
        is soon taken, and other workers may idle while tasks wait here: park."""
        try:
            while self.state is State.RUNNING and not self._parked and self._all_slots_long():
                try:
                    ready = sum(stats.ready for stats in [await self.broker.stats(spec.name) for spec in self.queues]
                                if stats is not None)
                except BrokerError:
                    return  # the session watch reconnects
                if ready <= self._window and not self._reconsuming and self._all_slots_long():
                    self._park()
                    return
                await asyncio.sleep(PARK_POLL)
        finally:
            self._checking_queues = False

    def _park(self) -> None:
        """Stop consuming, and hand what waits here back to the queue (copies, at its back) for idle
        workers; :meth:`_measured` consumes again once a slot frees.

        Cancelling is the only way to stop a quorum consumer's deliveries short of filling its window,
        and costs two round trips: nothing next to a task that has already run this long.
        """
        self._parked = True
        self._reconsuming = True
        log.info("%s: adaptive: every slot runs a long task and the queue is short; parking", self.name)
        asyncio.ensure_future(self._park_consumers())

    async def _park_consumers(self) -> None:
        try:
            for consumer in self._consumers:
                await consumer.retire()
        except BrokerError as exc:
            log.warning("%s: parking failed: %s", self.name, exc)  # the session watch reconnects
            return
        finally:
            self._reconsuming = False
        self._give_back_unstarted(republish=True, once=True)  # the queue is short: a worker elsewhere may idle
        if self._parked and self._has_free_slot():  # a task finished while the cancel was on its way
            self._unpark()

    def _unpark(self) -> None:
        if self._parked and not self._reconsuming and self.state is State.RUNNING:
            self._reconsuming = True
            asyncio.ensure_future(self._reconsume(self._window))

    def _has_free_slot(self) -> bool:
        assert self._runner is not None
        return len(self._runner.running) + len(self._async_started) < self.threads

    async def _reconsume(self, window: int, deeper: bool = False) -> None:
        """Replace each consumer by one with prefetch ``window``. ``deeper``: start the new one first, so
        deliveries never stop (the old one's tasks are short, and it is retired a few round trips later);
        otherwise retire first, so a shallower window never holds more than before."""
        self._parked = False
        try:
            for index, spec in enumerate(self.queues):
                old = self._consumers[index]
                if not deeper:
                    await old.retire()  # nothing to do for a parked worker's, retired already
                self._consumers[index] = await self.broker.consume(spec.name, window, self._on_delivery)
                if deeper:
                    await old.retire()
            log.info("%s: adaptive prefetch → %d (task %.2g s, refill gap %.2g s)", self.name, window,
                     (self.adaptive.task_seconds or 0) if self.adaptive else 0,
                     (self.adaptive.gap_seconds or 0) if self.adaptive else 0)
        except BrokerError as exc:
            # Some consumers may be retired with no successor: parked, so the watchdog tries again once a
            # slot is free (a lost connection instead ends the session, and the next one consumes afresh).
            self._parked = True
            log.warning("%s: changing prefetch failed: %s", self.name, exc)
        finally:
            self._reconsuming = False

    # -- one delivery --------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        current_worker.set(self.name)  # this task's own context; jobs copy it to their thread
        envelope = delivery.envelope
        key = (envelope.message_id, wire.int_header(envelope.headers, wire.H_ATTEMPT)) if envelope.message_id else None
        if key is not None and duplicates.is_redelivery(delivery):
            known = await self._known_result(key)
            if known is not None:
                self.duplicates_suppressed += 1
                duplicates.suppressed(self.name, key[0], known.outcome.value)
                await self._apply(delivery, known, key)
                return
        # A first delivery whose id is running here already (a producer reused it) runs too, unregistered.
        owned = key if key is not None and key not in self._inflight else None
        if owned is not None:
            future: asyncio.Future[Settlement] = asyncio.get_running_loop().create_future()
            self._inflight[owned] = future
        try:
            outcome = await self._decide(delivery)
        except BaseException:
            if owned is not None:
                self._inflight.pop(owned).cancel()
            raise
        if isinstance(outcome, NotStarted):  # given back before it started
            if owned is not None:
                self._inflight.pop(owned).cancel()
            if delivery.alive and outcome.republish:
                handed_back = wire.int_header(envelope.headers, wire.H_HANDED_BACK)
                copy = Settlement(Outcome.REQUEUE, {wire.H_HANDED_BACK: handed_back + 1})
                await self._apply(delivery, copy, None)
            elif delivery.alive:
                await delivery.requeue()
            return
        if owned is not None:
            future.set_result(outcome)
            del self._inflight[owned]
        await self._apply(delivery, outcome, key)

    async def _known_result(self, key: tuple[str, int]) -> Settlement | None:
        """The result of a run of this very message here (running now, or finished on a dead channel)."""
        earlier = self._inflight.get(key)
        if earlier is None:
            return self._orphans.take(key)
        try:
            return await asyncio.shield(earlier)
        except asyncio.CancelledError:
            if earlier.cancelled():  # the earlier one was given back unstarted: run this copy
                return None
            raise

    async def _decide(self, delivery: Delivery) -> Settlement | NotStarted:
        """What to do with this delivery; runs the task if it is one (NotStarted: given back unstarted)."""
        envelope = delivery.envelope
        limit = self._over_delivery_limit(delivery)
        if limit is not None:
            return limit
        if not wire.is_fairq(envelope):
            if self.raw_handler is None:
                return dead(wire.REASON_NOT_FAIRQ, self.name, detail="no fairq-protocol header and no --raw-handler")
            return await self._run(delivery, "raw", None, self.raw_handler, (envelope.body,), {}, attempt=1)
        try:
            msg = wire.decode_task(envelope, max_bytes=self.max_message_bytes)
        except DecodeError as exc:
            return dead(exc.reason, self.name, detail=exc.detail)
        task = self.tasks.get(msg.task)
        if task is None:
            missing = TaskNotFound(f"no task named {msg.task!r} in worker {self.name}")
            return dead(wire.REASON_UNKNOWN_TASK, self.name, error=missing)
        try:
            task.check_arguments(msg.args, msg.kwargs)
        except TypeError as exc:
            return dead(wire.REASON_BAD_ARGUMENTS, self.name, detail=f"{msg.task}: {exc}")
        return await self._run(delivery, msg.task, task, task.fn, msg.args, msg.kwargs, attempt=msg.attempt + 1)

    def _over_delivery_limit(self, delivery: Delivery) -> Settlement | None:
        """Dead-letter a message whose workers keep dying on it; on classic queues, count returns ourselves."""
        count = delivery.delivery_count
        if count is None and delivery.redelivered:
            count = wire.int_header(delivery.envelope.headers, wire.H_REDELIVERIES) + 1
            if count < self.delivery_limit:
                # Classic queues keep no count: put a counted copy at the back of the queue instead.
                return Settlement(Outcome.REQUEUE, {wire.H_REDELIVERIES: count},
                                  note=f"redelivered ({count} of {self.delivery_limit}): counted copy to the back")
        if count is not None and count >= self.delivery_limit:
            return dead(wire.REASON_DELIVERY_LIMIT, self.name,
                        detail=f"delivered {count + 1} times without being settled (limit {self.delivery_limit})")
        return None

    async def _run(self, delivery: Delivery, label: str, task: Task[Any, Any] | None, fn: Callable[..., Any],
                   args: Sequence[Any], kwargs: Mapping[str, Any], *, attempt: int) -> Settlement | NotStarted:
        """Run the task in a slot; the settlement its outcome calls for (NotStarted if given back unstarted)."""
        handed_back = wire.int_header(delivery.envelope.headers, wire.H_HANDED_BACK)
        if self._parked and not handed_back:
            # Sent before the cancel took effect, and reached here after the parked worker handed back
            # what it held: for an idle worker too.
            return NotStarted(republish=True)
        message_id = delivery.envelope.message_id or ""
        limit = task.time_limit if task is not None else None
        settlement = ACK
        started = 0.0
        try:
            if asyncio.iscoroutinefunction(fn):
                await self._async_slot()
                me = asyncio.current_task()
                assert me is not None
                started = self._async_started[me] = time.time()
                try:
                    self._emit("start", delivery, label, message_id, started)
                    await asyncio.wait_for(fn(*args, **kwargs), limit)
                finally:
                    del self._async_started[me]
                    self._async_release()
                    counted = me in self._noted_async
                    self._noted_async.discard(me)
                    self._measured(time.time() - started, counted)
            else:
                assert self._runner is not None
                labelled = Labelled(fn, label, limit, handed_back)
                job = self._runner.submit(labelled, args, kwargs, self._on_start(delivery, label, message_id))
                try:
                    await job.future
                finally:
                    started = job.started
                    if started:
                        self._measured((job.ended or time.time()) - started, job.noted_long)
        except NotStarted as exc:
            return exc
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a task's SystemExit must not take the worker down either
            if isinstance(exc, asyncio.TimeoutError) and limit is not None:
                exc = TimeLimitExceeded(f"{label} ran over its time limit of {limit:g} s")
            settlement = tasklog.failed(self.name, label, message_id, task, attempt, exc,
                                        after_failure(task, attempt, exc, self.name, self.rng))
        now = time.time()
        ran = now - started if started else 0.0
        self._emit("finish", delivery, label, message_id, now, settlement.outcome.value, ran)
        return settlement

    def _measured(self, seconds: float, counted: bool = False) -> None:
        """Feed a task's run time to the adaptive window, and follow it if it asks for a change."""
        if self.adaptive is not None:
            self.adaptive.task_finished(seconds, counted)
            window = None if self._reconsuming else self.adaptive.decide(time.monotonic())
            if window is not None and window != self._window:
                self._adapt(window)  # consumes again if parked
            else:
                self._unpark()  # a slot is free: consume again if parked

    def _abandon_thread(self, label: str) -> None:
        """A sync task overran its limit: its thread cannot be killed, so this process is replaced."""
        log.error("%s: %s overran its time limit; its thread cannot be stopped, so this worker process "
                  "finishes its other tasks and is replaced", self.name, label)
        self.recycle = True
        if self.state is State.RUNNING:
            self.stop()

    async def _apply(self, delivery: Delivery, settlement: Settlement, key: tuple[str, int] | None) -> None:
        """Carry out ``settlement``; if the delivery's channel is gone, keep it for the redelivered copy."""
        envelope = delivery.envelope
        if settlement.outcome is not Outcome.ACK and settlement.note:
            level = logging.INFO if settlement.outcome in (Outcome.RETRY, Outcome.REQUEUE) else logging.WARNING
            log.log(level, "%s: %s %s from %s: %s", self.name, settlement.outcome.value, envelope.message_id,
                    delivery.queue, settlement.note)
        try:
            if not delivery.alive:
                raise ChannelClosed("the delivery's channel is gone")
            if settlement.outcome is Outcome.RETRY:
                copy = wire.republished(envelope, **settlement.headers)
                await self.broker.publish(delivery.queue, copy, settlement.delay)
            elif settlement.outcome is Outcome.REQUEUE:
                await self.broker.publish(delivery.queue, wire.republished(envelope, **settlement.headers))
            elif settlement.outcome is Outcome.DEAD:
                await self.broker.dead_letter(delivery, settlement.headers)
                return
            await delivery.ack()
        except BrokerError as exc:
            # The broker has (or will have, when the connection closes) taken the message back.
            if key is not None:
                self._orphans.add(key, settlement)
            log.warning("%s: could not settle %s (%s); the broker will redeliver it and this worker "
                        "remembers the result for the copy", self.name, envelope.message_id, exc)

    def _on_start(self, delivery: Delivery, label: str, message_id: str) -> Callable[[float], None] | None:
        """What a thread calls (on the loop) as it starts a sync task: only if someone listens."""
        if self.observer is None and not tasklog.wanted():
            return None
        return lambda at: self._emit("start", delivery, label, message_id, at)

    def _emit(self, kind: str, delivery: Delivery, label: str, message_id: str, at: float, outcome: str = "",
              seconds: float = 0.0) -> None:
        if self.observer is not None:
            self.observer(TaskEvent(kind, self.name, delivery.queue, message_id, label, at, outcome, seconds))
        tasklog.event(kind, self.name, label, message_id, outcome, seconds)

