"""The application object: a registry of tasks and the way to send them."""

from __future__ import annotations

import atexit
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from .broker import Backend, QueueKind, QueueSpec, kind_option, open_backend, queue_options
from .config import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_QUEUE, broker_url
from .errors import ConfigurationError
from .loopthread import LoopThread
from .message import H_REPLY_TO, H_RESULT_TTL, Envelope, encode_task, encode_tasks, new_message_ids
from .producer import Producer
from .results.caller import Inbox, ResultClient
from .results.handle import Handle
from .task import (
    DEFAULT_DONT_RETRY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_RETRY_ON,
    Call,
    ExceptionTypes,
    Task,
    default_task_name,
)

P = ParamSpec("P")
R = TypeVar("R")

#: Seconds a result is kept for its caller when ``App(result_ttl=)`` does not say (one hour).
DEFAULT_RESULT_TTL = 3600.0
#: How long ``send`` waits for a broker that is down, blocked or full (when asked to wait) before raising;
#: for a batch, how long it may go without a single confirm.
DEFAULT_SEND_TIMEOUT = 30.0


@dataclass(frozen=True)
class QueueOptions:
    """How fairq creates one queue (see :meth:`App.queue`)."""

    kind: QueueKind | None = None  #: None: the app's
    max_length: int | None = None
    replicas: int | None = None  #: None: the app's


class App:
    """Tasks and their broker. Creating an App or defining tasks opens no connection.

    ``broker``: the broker URL (else ``$FAIRQ_BROKER_URL``, else the default), resolved and
    opened as a backend at the first send. ``backend``: a backend object instead, e.g. one
    in-process store shared with a worker in the same process; give one or the other.

    ``queue_kind``: how RabbitMQ creates a missing queue (:class:`~fairq.QueueKind`; None: its
    backend's default, quorum), a backend option: SQLite and memory ignore it. ``queue_replicas``: on
    how many nodes of a RabbitMQ cluster a new quorum queue is placed (None: the broker's default);
    it takes and delivers messages while a majority of them is up.

    ``events``: False to have ``fairq worker`` run this app's tasks without emitting events
    (as ``--no-events`` does; docs/events.md).

    ``results``: where task results are kept (docs/results.md): None, the broker's own way (RabbitMQ:
    a reply queue per caller, gone with it; SQLite: the file); or a result store's URL (``sqlite:///path``)
    that callers can come back to later, which the workers' copy of this app then writes to.
    ``result_ttl``: seconds a result is kept at most.
    """

    def __init__(
        self,
        broker: str | None = None,
        *,
        backend: Backend | None = None,
        queue_kind: QueueKind | str | None = None,
        queue_replicas: int | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        events: bool = True,
        results: str | Backend | None = None,
        result_ttl: float = DEFAULT_RESULT_TTL,
    ) -> None:
        if delivery_limit < 1:
            raise ConfigurationError(f"delivery_limit must be >= 1, got {delivery_limit}")
        if broker is not None and backend is not None:
            raise ConfigurationError("give App either broker= (a URL) or backend=, not both")
        self._broker_url = broker
        self._backend = backend
        queue_options(queue_kind, queue_replicas)  # refuse an unknown kind now, not at the first send
        self.queue_kind = QueueKind(queue_kind) if queue_kind is not None else None
        self.queue_replicas = queue_replicas
        self.max_message_bytes = max_message_bytes
        self.delivery_limit = delivery_limit
        self.send_timeout = send_timeout
        self.events = events
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._queue_options: dict[str, QueueOptions] = {}
        if result_ttl <= 0:
            raise ConfigurationError(f"result_ttl must be > 0, got {result_ttl}")
        self.result_ttl = result_ttl
        #: The result store given as ``results=`` (None: results go the broker's way).
        self.result_store: Backend | None = open_backend(results) if isinstance(results, str) else results
        if self.result_store is not None and self.result_store.kind == "amqp":
            raise ConfigurationError("results= takes a store that keeps results (sqlite:///path or memory://); "
                                     "RabbitMQ's results go to the caller's reply queue without it")
        self._loop = LoopThread("fairq-producer")
        self._producer: Producer | None = None
        self._results: ResultClient | None = None

    @property
    def explicit_broker_url(self) -> str | None:
        """The URL given as ``App(broker=...)`` (or of the backend given), if any."""
        return self._backend.url if self._backend is not None else self._broker_url

    def use_backend(self, backend: Backend | None) -> Backend | None:
        """Send to ``backend`` from now on (None: back to one opened from the URL), closing the producer
        connection open now; returns the backend in use before (None if none was built yet), to restore
        it. How :mod:`fairq.testing` points an app it did not build at a private ``memory://`` store."""
        previous = self._backend
        self.close()
        self._backend = backend
        return previous

    @property
    def broker_url(self) -> str:
        """The broker URL: the backend's once it is built, else resolved now (explicit, else
        ``$FAIRQ_BROKER_URL``, else the default)."""
        return self._backend.url if self._backend is not None else broker_url(self._broker_url)

    @property
    def backend(self) -> Backend:
        """Where this app's tasks go: the backend given, else one opened once from :attr:`broker_url`
        (at the first send, so ``$FAIRQ_BROKER_URL`` may be set after the App is made)."""
        if self._backend is None:
            self._backend = open_backend(self.broker_url)
        return self._backend

    # -- definitions --------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
        time_limit: float | None = None,
        retry_on: ExceptionTypes = DEFAULT_RETRY_ON,
        dont_retry: ExceptionTypes = DEFAULT_DONT_RETRY,
        result: bool = False,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match ParamSpec overloads to one implementation
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
        time_limit: float | None = None,
        retry_on: ExceptionTypes = DEFAULT_RETRY_ON,
        dont_retry: ExceptionTypes = DEFAULT_DONT_RETRY,
        result: bool = False,
    ) -> Any:
        """Register a function as a task; usable bare (``@app.task``) or with options.

        ``max_retries``: retries after the first attempt when it raises (default 3);
        the n-th retry waits ``retry_backoff * 2**(n-1)`` seconds (at most
        ``retry_backoff_max``), of which a random half is jitter.
        ``time_limit``: seconds after which a run counts as failed.

        Which failures are retried (while retries remain): ``retry_on`` exception types
        (default ``(Exception,)``) except ``dont_retry`` ones (default ``(TypeError,)``: a bug
        that a second run repeats), which win over ``retry_on`` and are dead-lettered after one
        run. An explicit ``raise fairq.Retry(...)`` is always retried while retries remain;
        ``fairq.Reject`` never is. Either option takes one type or a tuple, and replaces its default.

        ``result``: every send asks for the task's return value (``send(...).result()``; docs/results.md);
        without it only ``send_with(result=True)`` does, and nothing is sent back.

        ``name`` defaults to ``MODULE.QUALNAME``; for a function in the script being run
        (``__main__``), MODULE is the script's module name (``hello`` for ``python hello.py``),
        as ``fairq worker hello.py`` imports it. Without a script file (``python -c``, a REPL)
        pass ``name=``.
        """

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = name or default_task_name(f)
            if task_name in self.tasks and self.tasks[task_name].fn is not f:
                raise ConfigurationError(f"two tasks are named {task_name!r}")
            if max_retries < 0:
                raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
            if time_limit is not None and time_limit <= 0:
                raise ConfigurationError(f"time_limit must be > 0, got {time_limit}")
            if not queue:
                raise ConfigurationError("queue name must not be empty")
            task = Task(self, f, name=task_name, queue=queue, max_retries=max_retries, retry_backoff=retry_backoff,
                        retry_backoff_max=retry_backoff_max, time_limit=time_limit, retry_on=retry_on,
                        dont_retry=dont_retry, result=result)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def queue(self, name: str, *, kind: QueueKind | str | None = None, max_length: int | None = None,
              replicas: int | None = None) -> None:
        """Say how fairq creates queue ``name``: a ``max_length`` beyond which ``send`` is refused, and on
        RabbitMQ its type (``kind``, else the app's ``queue_kind``) and a quorum queue's ``replicas``
        (else the app's ``queue_replicas``)."""
        if max_length is not None and max_length < 1:
            raise ConfigurationError(f"max_length must be >= 1, got {max_length}")
        queue_options(kind or None, replicas)
        self._queue_options[name] = QueueOptions(QueueKind(kind) if kind else None, max_length, replicas)

    def queues(self) -> list[str]:
        """The queues of the registered tasks, in order of first definition."""
        return list(dict.fromkeys(t.queue for t in self.tasks.values()))

    def queue_spec(self, queue: str) -> QueueSpec:
        """Everything fairq needs to create ``queue`` as this app wants it."""
        options = self._queue_options.get(queue, QueueOptions())
        limits = [t.time_limit for t in self.tasks.values() if t.queue == queue and t.time_limit]
        return QueueSpec(
            queue,
            max_length=options.max_length,
            delivery_limit=self.delivery_limit,
            task_time_limit=max(limits) if limits else None,
            options=queue_options(options.kind or self.queue_kind, options.replicas or self.queue_replicas),
        )

    # -- sending ------------------------------------------------------------------------

    def send(self, task: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
             *, queue: str = DEFAULT_QUEUE, delay: float = 0.0, wait_if_full: bool = False,
             timeout: float | None = None, result: bool = False) -> Handle:
        """Enqueue ``task`` by name; returns its :class:`~fairq.Handle` (the message id) after the broker's
        confirm. ``result``: ask for the task's result (``handle.result()``).

        ``delay``: seconds before it may start (held by the broker). ``wait_if_full``:
        on a full queue, wait for room instead of raising :class:`~fairq.QueueFull`.
        ``timeout``: how long to wait for a broker that is down, blocked or full
        (default ``App.send_timeout``) before raising. See :meth:`send_many` for batches.
        """
        envelope = encode_task(task, args, dict(kwargs or {}), max_bytes=self.max_message_bytes)
        return self._publish(self.queue_spec(queue), [envelope], delay, wait_if_full, timeout, result)[0]

    def send_many(self, task: str, calls: Iterable[Call], *, queue: str = DEFAULT_QUEUE,
                  wait_if_full: bool = False, timeout: float | None = None, result: bool = False) -> list[Handle]:
        """Enqueue many calls of ``task`` with pipelined confirms; returns their handles (message ids)
        once every one is confirmed; ``result`` asks for every call's result.

        Every call is encoded (and checked) before the first is sent. ``timeout``
        (default ``App.send_timeout``) bounds how long the batch goes on without
        progress: it raises once that many seconds pass in which the broker
        confirmed none of its messages (down, blocked, not answering, or full with
        ``wait_if_full``). A batch that keeps being confirmed runs as long as it needs.
        """
        envelopes = encode_tasks(task, ((c.args, dict(c.kwargs)) for c in calls), max_bytes=self.max_message_bytes)
        return self._publish(self.queue_spec(queue), envelopes, 0.0, wait_if_full, timeout, result)

    def send_plain(self, queue: str, body: bytes, *, count: int = 1) -> list[Handle]:
        """Publish ``body`` as a plain persistent message (no fairq headers), as the article's task.py does.

        On RabbitMQ the queue is created classic and durable without arguments if missing
        (:attr:`QueueKind.PLAIN`), so programs that declare it the article's way can share it.
        """
        envelopes = [Envelope(body=body, message_id=message_id) for message_id in new_message_ids(count)]
        return self._publish(QueueSpec(queue, options=kind_option(QueueKind.PLAIN)), envelopes, 0.0, False, None,
                             False)

    def handle(self, message_id: str) -> Handle:
        """A handle on the result of a task sent earlier, perhaps by another process: where results are
        kept apart from their caller (SQLite, ``results=``, memory), it finds them until their TTL."""
        return Handle(message_id, self._result_client())

    def _result_client(self) -> ResultClient:
        if self._results is None:
            store = self.result_store
            self._results = ResultClient(self._loop, Inbox(store or self.backend, self.result_ttl, store is not None))
        return self._results

    def _publish(self, spec: QueueSpec, envelopes: list[Envelope], delay: float, wait_if_full: bool,
                 timeout: float | None, result: bool) -> list[Handle]:
        if self._producer is None:
            self._producer = Producer(self.backend)
            atexit.register(self.close)
        producer = self._producer
        budget = self.send_timeout if timeout is None else timeout
        client = self._result_client() if result else None
        if client is not None:
            self._loop.run(self._ask_results(client.inbox, envelopes, producer.publish(
                spec, envelopes[0], delay=delay, wait_if_full=wait_if_full, timeout=budget) if len(envelopes) == 1
                else producer.publish_many(spec, envelopes, wait_if_full=wait_if_full, timeout=budget)))
        elif len(envelopes) == 1:
            self._loop.run(producer.publish(spec, envelopes[0], delay=delay, wait_if_full=wait_if_full,
                                            timeout=budget))
        else:
            self._loop.run(producer.publish_many(spec, envelopes, wait_if_full=wait_if_full, timeout=budget))
        return [Handle(e.message_id or "", client) for e in envelopes]

    async def _ask_results(self, inbox: Inbox, envelopes: list[Envelope], publish: Coroutine[Any, Any, Any]) -> None:
        """Have every envelope's result sent to the inbox (opened at the first send that asks), then
        ``publish`` them: one trip to the loop thread."""
        try:
            address = await inbox.address()
        except BaseException:
            publish.close()
            raise
        for envelope in envelopes:  # a batch's envelopes share one headers dict: set once, seen by all
            envelope.headers[H_REPLY_TO] = address
            envelope.headers[H_RESULT_TTL] = self.result_ttl
        await publish

    def close(self) -> None:
        """Close the producer connection and the result inbox (also done at interpreter exit)."""
        results, self._results = self._results, None
        if self._producer is not None or results is not None:
            producer, self._producer = self._producer, None
            try:
                if results is not None:
                    self._loop.run(results.inbox.close(), timeout=5)
                if producer is not None:
                    self._loop.run(producer.close(), timeout=5)
            finally:
                self._loop.stop()
