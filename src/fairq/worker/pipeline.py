"""One delivery, from arrival to settlement: duplicates, decide, run, apply. The one place hooks fire.

Every delivery ends in exactly one of: ack (done), retry (a delayed copy, then ack),
dead letter (a copy in QUEUE.dlq, then ack) or a hand-back (not started: requeued, or a
fresh copy at the back of the queue). Copies are always confirmed before the original is
acked, so a crash in between duplicates rather than loses. A task that finishes while
its delivery's channel is gone hands its result to the redelivered copy instead of
running twice here (duplicates.py, settlement.Remembered).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import message as wire
from ..broker import Delivery
from ..errors import BrokerError, ChannelClosed, DecodeError, TaskNotFound, TimeLimitExceeded
from ..task import Task
from . import duplicates, redeliveries, tasklog
from .context import current_worker
from .hooks import DeadLettered, Event, Finished, HandedBack, Hooks, Received, Retried, Started
from .settlement import ACK, Outcome, Remembered, Settlement, after_failure, dead
from .slots import NotStarted, Running, Slots
from .window import WindowControl

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("fairq.worker")

Key = tuple[str, int]
#: The outcomes that end a task for good, and so send its result to a caller that asked.
REPLIED = (Outcome.ACK, Outcome.DEAD)


class Pipeline:
    """Handles the worker's deliveries one coroutine each (the worker starts them)."""

    def __init__(self, worker: Worker, slots: Slots, window: WindowControl, hooks: Hooks) -> None:
        self._worker = worker
        self._slots = slots
        self._window = window
        self.hooks = hooks
        self._inflight: dict[Key, asyncio.Future[Settlement]] = {}
        self._orphans = Remembered()
        #: Redeliveries settled with the result of a run here instead of running again (duplicates.py).
        self.duplicates_suppressed = 0

    async def handle(self, delivery: Delivery) -> None:
        current_worker.set(self._worker.name)  # this task's own context; sync tasks copy it to their thread
        envelope = delivery.envelope
        self._fire(Received, delivery)
        key = (envelope.message_id, wire.int_header(envelope.headers, wire.H_ATTEMPT)) if envelope.message_id else None
        if key is not None and duplicates.is_redelivery(delivery):
            known = await self._known_result(key)
            if known is not None:
                self.duplicates_suppressed += 1
                duplicates.suppressed(self._worker.name, key[0], known.outcome.value)
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
                self._fire(HandedBack, delivery, how="requeued")
            else:
                self._fire(HandedBack, delivery, how="lost")
            return
        if owned is not None:
            future.set_result(outcome)
            del self._inflight[owned]
        await self._apply(delivery, outcome, key)

    async def _known_result(self, key: Key) -> Settlement | None:
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
        worker = self._worker
        envelope = delivery.envelope
        limit = redeliveries.over_limit(delivery, worker.delivery_limit, worker.name)
        if limit is not None:
            return limit
        if not wire.is_fairq(envelope):
            if worker.raw_handler is None:
                return dead(wire.REASON_NOT_FAIRQ, worker.name, detail="no fairq-protocol header and no --raw-handler")
            return await self._run(delivery, "raw", None, worker.raw_handler, (envelope.body,), {}, attempt=1)
        try:
            msg = wire.decode_task(envelope, max_bytes=worker.max_message_bytes)
        except DecodeError as exc:
            return dead(exc.reason, worker.name, detail=exc.detail)
        task = worker.tasks.get(msg.task)
        if task is None:
            missing = TaskNotFound(f"no task named {msg.task!r} in worker {worker.name}")
            return dead(wire.REASON_UNKNOWN_TASK, worker.name, error=missing)
        try:
            task.check_arguments(msg.args, msg.kwargs)
        except TypeError as exc:
            return dead(wire.REASON_BAD_ARGUMENTS, worker.name, detail=f"{msg.task}: {exc}")
        return await self._run(delivery, msg.task, task, task.fn, msg.args, msg.kwargs, attempt=msg.attempt + 1)

    async def _run(self, delivery: Delivery, label: str, task: Task[Any, Any] | None, fn: Callable[..., Any],
                   args: Sequence[Any], kwargs: Mapping[str, Any], *, attempt: int) -> Settlement | NotStarted:
        """Run the task in a slot; the settlement its outcome calls for (NotStarted if given back unstarted)."""
        handed_back = wire.int_header(delivery.envelope.headers, wire.H_HANDED_BACK)
        if self._window.parked and not handed_back:
            # Sent before the cancel took effect, and reached here after the parked worker handed back
            # what it held: for an idle worker too.
            return NotStarted(republish=True)
        message_id = delivery.envelope.message_id or ""
        limit = task.time_limit if task is not None else None
        record = Running(message_id, label, limit, handed_back, queue=delivery.queue)
        on_start = None
        if self.hooks.wants(Started):
            def on_start(running: Running) -> None:
                self._fire(Started, delivery, task=label, at=running.started, slot=running.index)
        settlement = ACK
        error = ""
        try:
            try:
                value = await self._slots.run(record, fn, args, kwargs, on_start)
                if value is not None and wire.H_REPLY_TO in delivery.envelope.headers:
                    settlement = Settlement(Outcome.ACK, value=value)
            finally:
                self._window.measured(record)
        except NotStarted as exc:
            return exc
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a task's SystemExit must not take the worker down either
            if isinstance(exc, asyncio.TimeoutError) and limit is not None:
                exc = TimeLimitExceeded(f"{label} ran over its time limit of {limit:g} s")
            error = f"{type(exc).__name__}: {exc}"
            settlement = tasklog.failed(self._worker.name, label, message_id, task, attempt, exc,
                                        after_failure(task, attempt, exc, self._worker.name, self._worker.rng))
        now = time.time()
        self._fire(Finished, delivery, task=label, at=now, outcome=settlement.outcome.value,
                   seconds=now - record.started if record.started else 0.0, slot=record.index, error=error)
        return settlement

    async def _apply(self, delivery: Delivery, settlement: Settlement, key: Key | None) -> None:
        """Carry out ``settlement``; if the delivery's channel is gone, keep it for the redelivered copy."""
        worker = self._worker
        envelope = delivery.envelope
        if settlement.outcome is not Outcome.ACK and settlement.note:
            level = logging.INFO if settlement.outcome in (Outcome.RETRY, Outcome.REQUEUE) else logging.WARNING
            log.log(level, "%s: %s %s from %s: %s", worker.name, settlement.outcome.value, envelope.message_id,
                    delivery.queue, settlement.note)
        try:
            if not delivery.alive:
                raise ChannelClosed("the delivery's channel is gone")
            if settlement.outcome in REPLIED and wire.H_REPLY_TO in envelope.headers:  # before the ack (replies.py)
                dead_headers = settlement.headers if settlement.outcome is Outcome.DEAD else None
                await worker.replies.send(delivery, settlement.value, dead_headers)
            if settlement.outcome is Outcome.RETRY:
                copy = wire.republished(envelope, **settlement.headers)
                await worker.broker.publish(delivery.queue, copy, settlement.delay)
            elif settlement.outcome is Outcome.REQUEUE:
                await worker.broker.publish(delivery.queue, wire.republished(envelope, **settlement.headers))
            elif settlement.outcome is Outcome.DEAD:
                await worker.broker.dead_letter(delivery, settlement.headers)
                self._fire(DeadLettered, delivery, reason=str(settlement.headers.get(wire.H_REASON, "")))
                return
            await delivery.ack()
        except BrokerError as exc:
            # The broker has (or will have, when the connection closes) taken the message back.
            if key is not None:
                self._orphans.add(key, settlement)
            log.warning("%s: could not settle %s (%s); the broker will redeliver it and this worker "
                        "remembers the result for the copy", worker.name, envelope.message_id, exc)
            return
        if settlement.outcome is Outcome.RETRY:
            self._fire(Retried, delivery, delay=settlement.delay)
        elif settlement.outcome is Outcome.REQUEUE:
            self._fire(HandedBack, delivery, how="copy")

    def _fire(self, kind: type[Event], delivery: Delivery, *, task: str | None = None, at: float | None = None,
              **extra: Any) -> None:
        """Build and fire one hook event about ``delivery``, only if someone listens: every event is made here."""
        if not self.hooks.wants(kind):
            return
        envelope = delivery.envelope
        headers = envelope.headers
        if task is None:
            named = headers.get(wire.H_TASK) if wire.is_fairq(envelope) else "raw"
            task = named if isinstance(named, str) else ""
        self.hooks.fire(kind(
            message_id=envelope.message_id or "", task=task, queue=delivery.queue, worker=self._worker.name,
            attempt=wire.int_header(headers, wire.H_ATTEMPT) + 1, at=time.time() if at is None else at,
            sent=envelope.timestamp.timestamp() if envelope.timestamp is not None else None, **extra))
