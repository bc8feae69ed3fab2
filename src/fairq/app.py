"""The application object: a registry of tasks and the way to send them."""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from .broker import QueueKind, QueueSpec
from .config import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_QUEUE, broker_url
from .errors import ConfigurationError
from .loopthread import LoopThread
from .message import Envelope, encode_task
from .producer import Producer
from .task import DEFAULT_MAX_RETRIES, Call, Task

P = ParamSpec("P")
R = TypeVar("R")


class App:
    """Tasks and their broker. Creating an App or defining tasks opens no connection."""

    def __init__(
        self,
        broker: str | None = None,
        *,
        queue_kind: QueueKind | str = QueueKind.QUORUM,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._broker_url = broker
        self.queue_kind = QueueKind(queue_kind)
        self.max_message_bytes = max_message_bytes
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._loop = LoopThread("fairq-producer")
        self._producer: Producer | None = None

    @property
    def explicit_broker_url(self) -> str | None:
        """The URL given as ``App(broker=...)``, if any."""
        return self._broker_url

    @property
    def broker_url(self) -> str:
        """The broker URL, resolved now (explicit, else ``$FAIRQ_BROKER_URL``, else the default)."""
        return broker_url(self._broker_url)

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        time_limit: float | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        time_limit: float | None = None,
    ) -> Any:
        """Register a function as a task; usable bare (``@app.task``) or with options."""

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            if task_name in self.tasks and self.tasks[task_name].fn is not f:
                raise ConfigurationError(f"two tasks are named {task_name!r}")
            if max_retries < 0:
                raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
            if not queue:
                raise ConfigurationError("queue name must not be empty")
            task = Task(self, f, name=task_name, queue=queue, max_retries=max_retries, time_limit=time_limit)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def queues(self) -> list[str]:
        """The queues of the registered tasks, in order of first definition."""
        return list(dict.fromkeys(t.queue for t in self.tasks.values()))

    def queue_spec(self, queue: str) -> QueueSpec:
        return QueueSpec(queue, self.queue_kind)

    # -- sending ------------------------------------------------------------------------

    def send(self, task: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
             *, queue: str = DEFAULT_QUEUE) -> str:
        """Enqueue ``task`` by name; returns the message id after the broker's confirm."""
        envelope = encode_task(task, args, dict(kwargs or {}), max_bytes=self.max_message_bytes)
        return self._publish(self.queue_spec(queue), [envelope])[0]

    def send_many(self, task: str, calls: Iterable[Call], *, queue: str = DEFAULT_QUEUE) -> list[str]:
        """Enqueue many calls of ``task`` with pipelined confirms; returns their message ids."""
        envelopes = [encode_task(task, c.args, dict(c.kwargs), max_bytes=self.max_message_bytes) for c in calls]
        return self._publish(self.queue_spec(queue), envelopes)

    def send_plain(self, queue: str, body: bytes, *, count: int = 1) -> list[str]:
        """Publish ``body`` as a plain persistent message (no fairq headers), as the article's task.py does.

        The queue is created classic and durable without arguments if missing, so
        programs that declare it the article's way can share it.
        """
        envelopes = [Envelope(body=body, message_id=uuid.uuid4().hex) for _ in range(count)]
        return self._publish(QueueSpec(queue, QueueKind.PLAIN), envelopes)

    def _publish(self, spec: QueueSpec, envelopes: list[Envelope]) -> list[str]:
        if self._producer is None:
            self._producer = Producer(self.broker_url)
            atexit.register(self.close)
        producer = self._producer
        if len(envelopes) == 1:
            self._loop.run(producer.publish(spec, envelopes[0]))
        else:
            self._loop.run(producer.publish_many(spec, envelopes))
        return [e.message_id or "" for e in envelopes]

    def close(self) -> None:
        """Close the producer connection (also done at interpreter exit)."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                self._loop.run(producer.close(), timeout=5)
            finally:
                self._loop.stop()
