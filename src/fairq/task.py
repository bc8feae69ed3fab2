"""A task: a function registered with an :class:`~fairq.App`, runnable here or sent to a worker."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .errors import EncodeError

if TYPE_CHECKING:
    from .app import App

P = ParamSpec("P")
R = TypeVar("R")

#: Retries after the first attempt when ``@app.task`` does not say (issue 3 uses it).
DEFAULT_MAX_RETRIES = 3


@dataclass(frozen=True)
class Call:
    """One call in a :meth:`Task.send_many` batch."""

    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class Task(Generic[P, R]):
    """What ``@app.task`` returns. Calling it runs the function here; ``send`` enqueues it."""

    def __init__(
        self,
        app: App,
        fn: Callable[P, R],
        *,
        name: str,
        queue: str,
        max_retries: int,
        time_limit: float | None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.max_retries = max_retries
        self.time_limit = time_limit
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<fairq.Task {self.name} queue={self.queue!r}>"

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`TypeError` if the function could not be called with these arguments."""
        self.signature.bind(*args, **kwargs)

    def send(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue one call; returns its message id once the broker has confirmed it."""
        self._check(args, kwargs)
        return self.app.send(self.name, args, kwargs, queue=self.queue)

    def send_many(self, calls: Iterable[Sequence[Any] | Call]) -> list[str]:
        """Enqueue many calls with pipelined confirms; returns their message ids once all are confirmed.

        Each item is a sequence of positional arguments, or a :class:`Call`.
        """
        normalised = [c if isinstance(c, Call) else Call(tuple(c)) for c in calls]
        for call in normalised:
            self._check(call.args, call.kwargs)
        return self.app.send_many(self.name, normalised, queue=self.queue)

    def _check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        try:
            self.check_arguments(args, kwargs)
        except TypeError as exc:
            raise EncodeError(f"cannot send {self.name}: {exc}") from None
