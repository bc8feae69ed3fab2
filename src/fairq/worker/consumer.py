"""One worker process's engine: consume, run tasks in slots, settle each delivery once.

Every delivery ends in exactly one of: ack (task done), dead-letter (cannot or
did not succeed), or requeue (not started before shutdown). Acks are sent from
the event loop, which owns the connection; sync tasks run on a thread pool and
hand their outcome back to the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import logging
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import message as wire
from ..broker import Broker, Consumer, Delivery, QueueSpec, connect_url
from ..config import DEFAULT_MAX_MESSAGE_BYTES
from ..errors import BrokerError, DecodeError, Reject
from ..task import Task
from .policy import Prefetch

log = logging.getLogger("fairq.worker")

#: Name of the worker running the current task (readable from inside tasks and raw handlers).
current_worker: contextvars.ContextVar[str] = contextvars.ContextVar("fairq_worker", default="")

RawHandler = Callable[[bytes], Any]


@dataclass(frozen=True)
class TaskEvent:
    """A task started or finished on a worker; feeds the demo, stats and logs."""

    kind: str  #: "start" or "finish"
    worker: str
    queue: str
    message_id: str
    task: str  #: task name, or "raw" for plain messages
    at: float  #: time.time()
    outcome: str = ""  #: on finish: "ok", "dead-lettered" or "requeued"


Observer = Callable[[TaskEvent], None]


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # no new tasks; running ones get a grace period
    ABORTING = "aborting"  # drop everything; the broker redelivers what was unacked


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
        prefetch: Prefetch = Prefetch("fair"),
        raw_handler: RawHandler | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        grace_seconds: float = 30.0,
        observer: Observer | None = None,
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
        self.grace_seconds = grace_seconds
        self.observer = observer
        self.broker: Broker = connect_url(broker_url)
        self.state = State.RUNNING
        self._free = threads
        self._buffer: deque[Delivery] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._consumers: list[Consumer] = []
        self._wake: asyncio.Event | None = None
        #: Set once every consumer is registered with the broker.
        self.ready = asyncio.Event()

    # -- control (call on the worker's loop) ----------------------------------------------

    def stop(self) -> None:
        """Graceful: take nothing new, hand back unstarted tasks, let running ones finish."""
        if self.state is State.RUNNING:
            self.state = State.STOPPING
        elif self.state is State.STOPPING:
            self.state = State.ABORTING
        if self._wake is not None:
            self._wake.set()

    def abort(self) -> None:
        """Stop now; unfinished tasks are redelivered elsewhere by the broker."""
        self.state = State.ABORTING
        if self._wake is not None:
            self._wake.set()

    # -- main loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, consume until stopped, shut down in order. Raises BrokerError if the broker is lost."""
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"fairq-{self.name}")
        try:
            await self.broker.connect()
            for spec in self.queues:
                await self.broker.declare(spec)
            count = self.prefetch.count(self.threads)
            for spec in self.queues:
                self._consumers.append(await self.broker.consume(spec.name, count, self._on_delivery))
            log.info("%s consuming %s (threads=%d, prefetch=%s → %s)", self.name,
                     ", ".join(q.name for q in self.queues), self.threads, self.prefetch, count or "no cap")
            self.ready.set()
            lost = asyncio.ensure_future(self.broker.wait_lost())
            try:
                await self._until_stopped(lost)
            finally:
                lost.cancel()
        finally:
            await self.broker.close()
            self._pool.shutdown(wait=self.state is not State.ABORTING, cancel_futures=True)

    async def _until_stopped(self, lost: asyncio.Future[BaseException]) -> None:
        assert self._wake is not None
        waker = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({waker, lost}, return_when=asyncio.FIRST_COMPLETED)
        waker.cancel()
        if lost.done() and self.state is State.RUNNING:
            self.state = State.ABORTING
            raise BrokerError(f"{self.name}: {lost.result()}")
        # Stop taking work first, then return what was prefetched, then wait for the running tasks:
        # the connection stays open all along, so heartbeats go on and acks can still be sent.
        for consumer in self._consumers:
            try:
                await consumer.cancel()
            except BrokerError as exc:
                log.warning("%s: cancelling consumer: %s", self.name, exc)
        await self._requeue_buffer()
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

    async def _requeue_buffer(self) -> None:
        while self._buffer:
            delivery = self._buffer.popleft()
            try:
                await delivery.requeue()
            except BrokerError as exc:
                log.warning("%s: requeue failed (%s); the broker redelivers on close", self.name, exc)

    # -- dispatch ------------------------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery) -> None:
        if self.state is not State.RUNNING:
            await delivery.requeue()
        elif self._free > 0:
            self._start(delivery)
        else:
            self._buffer.append(delivery)

    def _start(self, delivery: Delivery) -> None:
        self._free -= 1
        task = asyncio.ensure_future(self._handle(delivery))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._free += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: internal error settling a delivery", self.name, exc_info=task.exception())
        if self._buffer and self.state is State.RUNNING:
            self._start(self._buffer.popleft())

    # -- one delivery --------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        if not wire.is_fairq(envelope):
            if self.raw_handler is not None:
                await self._run(delivery, "raw", self.raw_handler, (envelope.body,), {}, attempt=1)
            else:
                await self._dead_letter(delivery, wire.REASON_NOT_FAIRQ, detail="no fairq-protocol header and no --raw-handler")
            return
        try:
            msg = wire.decode_task(envelope, max_bytes=self.max_message_bytes)
        except DecodeError as exc:
            await self._dead_letter(delivery, exc.reason, detail=exc.detail)
            return
        task = self.tasks.get(msg.task)
        if task is None:
            await self._dead_letter(delivery, wire.REASON_UNKNOWN_TASK, detail=f"no task named {msg.task!r} in worker {self.name}")
            return
        try:
            task.check_arguments(msg.args, msg.kwargs)
        except TypeError as exc:
            await self._dead_letter(delivery, wire.REASON_BAD_ARGUMENTS, detail=f"{msg.task}: {exc}")
            return
        await self._run(delivery, msg.task, task.fn, msg.args, msg.kwargs, attempt=msg.attempt + 1)

    async def _run(self, delivery: Delivery, label: str, fn: Callable[..., Any], args: Sequence[Any],
                   kwargs: Mapping[str, Any], *, attempt: int) -> None:
        message_id = delivery.envelope.message_id or ""
        self._emit("start", delivery, label, message_id)
        token = current_worker.set(self.name)
        try:
            if asyncio.iscoroutinefunction(fn):
                await fn(*args, **kwargs)
            else:
                ctx = contextvars.copy_context()
                call = functools.partial(ctx.run, fn, *args, **kwargs)
                await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except asyncio.CancelledError:
            raise
        except Reject as exc:
            await self._dead_letter(delivery, wire.REASON_REJECTED, error=exc, attempts=attempt)
            self._emit("finish", delivery, label, message_id, "dead-lettered")
        except BaseException as exc:  # a task's SystemExit must not take the worker down either
            reason = wire.REASON_RAW_FAILED if label == "raw" else wire.REASON_FAILED
            log.warning("%s: %s failed: %s: %s", self.name, label, type(exc).__name__, exc)
            await self._dead_letter(delivery, reason, error=exc, attempts=attempt,
                                    traceback_text="".join(traceback.format_exception(exc)))
            self._emit("finish", delivery, label, message_id, "dead-lettered")
        else:
            await delivery.ack()
            self._emit("finish", delivery, label, message_id, "ok")
        finally:
            current_worker.reset(token)

    async def _dead_letter(self, delivery: Delivery, reason: str, **details: Any) -> None:
        headers = wire.dead_letter_headers(reason, worker=self.name, **details)
        log.warning("%s: dead-lettering %s from %s: %s %s", self.name, delivery.envelope.message_id, delivery.queue,
                    reason, details.get("detail", ""))
        try:
            await self.broker.dead_letter(delivery, headers)
        except BrokerError as exc:
            # Never drop: hand it back; the queue's delivery limit ends a loop.
            log.error("%s: could not dead-letter %s (%s); requeueing it", self.name, delivery.envelope.message_id, exc)
            await delivery.requeue()

    def _emit(self, kind: str, delivery: Delivery, label: str, message_id: str, outcome: str = "") -> None:
        if self.observer is not None:
            self.observer(TaskEvent(kind, self.name, delivery.queue, message_id, label, time.time(), outcome))
