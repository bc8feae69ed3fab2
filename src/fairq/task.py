"""A task: a function registered with an :class:`~fairq.App`, runnable here or sent to a worker."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from .errors import ConfigurationError, EncodeError

if TYPE_CHECKING:
    from .results.handle import Handle

P = ParamSpec("P")
R = TypeVar("R")

#: Retries after the first attempt when ``@app.task`` does not say.
DEFAULT_MAX_RETRIES = 3
#: The first retry waits about this many seconds; each further one twice as long.
DEFAULT_RETRY_BACKOFF = 1.0
#: No retry waits longer than this (one hour).
DEFAULT_RETRY_BACKOFF_MAX = 3600.0
#: What a failed run is retried for when ``@app.task`` does not say: any ordinary exception ...
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (Exception,)
#: ... except these, which mean a bug or bad input that a second run cannot fix. (fairq.Reject is never
#: retried; arguments that do not fit the signature are dead-lettered as ``bad arguments`` before any run.)
DEFAULT_DONT_RETRY: tuple[type[BaseException], ...] = (TypeError,)

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True)
class Call:
    """One call in a :meth:`Task.send_many` batch."""

    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundCall:
    """One call of a task, made but not sent (``task.call(...)``): what :func:`fairq.group` takes."""

    task: Task[Any, Any]
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    """What a task needs from its app: a way to send calls (:class:`~fairq.App` is one).

    Named here so that task.py and app.py never import each other.
    """

    def send(self, task: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
             *, queue: str = ..., delay: float = 0.0, wait_if_full: bool = False,
             timeout: float | None = None, result: bool = False) -> Handle: ...

    def send_many(self, task: str, calls: Iterable[Call], *, queue: str = ...,
                  wait_if_full: bool = False, timeout: float | None = None, result: bool = False) -> list[Handle]: ...


class Task(Generic[P, R]):
    """What ``@app.task`` returns. Calling it runs the function here; ``send`` enqueues it."""

    def __init__(
        self,
        app: Sender,
        fn: Callable[P, R],
        *,
        name: str,
        queue: str,
        max_retries: int,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
        time_limit: float | None = None,
        retry_on: ExceptionTypes = DEFAULT_RETRY_ON,
        dont_retry: ExceptionTypes = DEFAULT_DONT_RETRY,
        result: bool = False,
    ) -> None:
        self.app = app
        #: Every send asks for the result (``@app.task(result=True)``); else only ``send_with(result=True)``.
        self.result = result
        self.fn = fn
        self.name = name
        self.queue = queue
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.time_limit = time_limit
        #: Exception types a failed run is retried for, and those it never is (wins over ``retry_on``);
        #: the whole rule is :func:`fairq.worker.settlement.retry_verdict`.
        self.retry_on = exception_types(retry_on, "retry_on")
        self.dont_retry = exception_types(dont_retry, "dont_retry")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._positional = _positional_range(self.signature)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<fairq.Task {self.name} queue={self.queue!r}>"

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`TypeError` if the function could not be called with these arguments.

        A call with positional arguments only is checked by their count when that settles it:
        ``Signature.bind`` costs a few microseconds, on every send and every delivery."""
        if not kwargs and self._positional is not None:
            low, high = self._positional
            if low <= len(args) <= high:
                return
        self.signature.bind(*args, **kwargs)

    def send(self, *args: P.args, **kwargs: P.kwargs) -> Handle:
        """Enqueue one call once the broker has confirmed it; returns its :class:`~fairq.Handle` (the
        message id, and its result if the task asks for results)."""
        self._check(args, kwargs)
        return self.app.send(self.name, args, kwargs, queue=self.queue, result=self.result)

    def send_with(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
                  queue: str | None = None, delay: float = 0.0, wait_if_full: bool = False,
                  timeout: float | None = None, result: bool | None = None) -> Handle:
        """Enqueue one call with options: another ``queue`` than the task's own (it runs only where a
        worker consumes that queue, e.g. ``-Q urgent``), ``delay`` seconds before it may start (held by
        the broker, up to about 621 days), ``wait_if_full`` instead of raising QueueFull, a
        ``timeout`` for a broker that is down, blocked or full, and ``result`` to ask for the result
        (or not) whatever the task says."""
        self._check(args, kwargs or {})
        return self.app.send(self.name, args, kwargs, queue=queue or self.queue, delay=delay,
                             wait_if_full=wait_if_full, timeout=timeout,
                             result=self.result if result is None else result)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> BoundCall:
        """This call, not sent: for :func:`fairq.group`. Checked against the signature now."""
        self._check(args, kwargs)
        return BoundCall(self, args, kwargs)

    def retry_delay(self, attempt: int, rng: Callable[[float, float], float]) -> float:
        """Seconds before retry number ``attempt`` (1 = first retry): exponential, half of it jitter."""
        ceiling = min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1))
        return ceiling / 2 + rng(0.0, ceiling / 2)

    def send_many(self, calls: Iterable[Sequence[Any] | Call], *, result: bool | None = None) -> list[Handle]:
        """Enqueue many calls with pipelined confirms; returns their message ids once all are confirmed.

        Each item is a sequence of positional arguments, or a :class:`Call`. The send
        gives up only after ``App.send_timeout`` seconds without a confirm
        (:meth:`App.send_many`), however long the whole batch takes.
        """
        normalised = [c if isinstance(c, Call) else Call(tuple(c)) for c in calls]
        checked: set[tuple[int, tuple[str, ...]]] = set()
        for call in normalised:
            # Binding depends only on how many positional and which keyword arguments: check each shape once.
            shape = (len(call.args), tuple(call.kwargs))
            if shape not in checked:
                self._check(call.args, call.kwargs)
                checked.add(shape)
        return self.app.send_many(self.name, normalised, queue=self.queue,
                                  result=self.result if result is None else result)

    def _check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        try:
            self.check_arguments(args, kwargs)
        except TypeError as exc:
            raise EncodeError(f"cannot send {self.name}: {exc}") from None


def _positional_range(signature: inspect.Signature) -> tuple[int, float] | None:
    """(fewest, most) positional arguments a call without keywords may pass; None when a keyword-only
    parameter has no default (then no positional-only call binds, and ``bind`` says why)."""
    low, high = 0, 0.0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            high = float("inf")
        elif param.kind is param.KEYWORD_ONLY:
            if param.default is param.empty:
                return None
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            high += 1
            if param.default is param.empty:
                low += 1
    return low, high


def exception_types(value: ExceptionTypes, option: str) -> tuple[type[BaseException], ...]:
    """``value`` as a tuple of exception classes (one class is accepted too); ConfigurationError otherwise."""
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(f"{option} takes exception types, got {item!r}")
    return types


def default_task_name(fn: Callable[..., Any]) -> str:
    """``MODULE.QUALNAME``, where a function of the running script (``__main__``) takes the module name
    a worker importing that script gives it: senders and workers must agree on the name."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        path = getattr(main, "__file__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            module = spec.name  # python -m package.module
        elif path:
            module = Path(path).stem  # python hello.py: `fairq worker hello.py` imports it as `hello`
        else:
            raise ConfigurationError(f"task {fn.__qualname__!r} is defined in {module} without a script file "
                                     f"(python -c or an interactive session), so it has no module name a worker "
                                     f"could share; pass @app.task(name=...) with the name the worker knows it by")
    return f"{module}.{fn.__qualname__}"
