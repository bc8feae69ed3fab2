"""What ran: each task call the worker made, with its result or exception (the original object).

The worker sees the task's exception only to decide and to write the dead letter's headers; a test
wants the object itself (``pytest.raises``). So the testing helper hands the worker copies of the
app's tasks whose function records every call here, and matches a dead letter to the last failed
call of the same task with the same arguments and error type.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..deadletters import DeadLetter
from ..task import Task


@dataclass(frozen=True)
class Run:
    """One call of a task by the worker."""

    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def error_type(exc: BaseException) -> str:
    """The name a dead letter gives ``exc``'s type (as :func:`fairq.message.dead_letter_headers` writes it)."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")


def _key(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str]:
    return task, json.dumps([list(args), dict(kwargs)], sort_keys=True, default=repr)


@dataclass
class Recorder:
    """Every call, in the order they ended (thread-safe: sync tasks end on the worker's threads)."""

    runs: list[Run] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, run: Run) -> None:
        with self._lock:
            self.runs.append(run)

    def recording(self, tasks: Mapping[str, Task[Any, Any]]) -> dict[str, Task[Any, Any]]:
        """Copies of ``tasks`` whose functions record each call here; the app's own tasks stay as they are."""
        return {name: self._wrapped(task) for name, task in tasks.items()}

    def _wrapped(self, task: Task[Any, Any]) -> Task[Any, Any]:
        clone = copy.copy(task)
        fn: Callable[..., Any] = task.fn
        name = task.name
        add = self.add

        if task.is_async:
            @functools.wraps(fn)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    add(Run(name, tuple(args), dict(kwargs), error=exc, seconds=time.perf_counter() - started))
                    raise
                add(Run(name, tuple(args), dict(kwargs), result, seconds=time.perf_counter() - started))
                return result

            clone.fn = call_async
        else:
            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    add(Run(name, tuple(args), dict(kwargs), error=exc, seconds=time.perf_counter() - started))
                    raise
                add(Run(name, tuple(args), dict(kwargs), result, seconds=time.perf_counter() - started))
                return result

            clone.fn = call
        return clone

    def exception_for(self, dead: DeadLetter) -> BaseException | None:
        """The exception object the task raised on the run that got ``dead`` dead-lettered, if one did."""
        if dead.error_type is None or dead.args is None or dead.kwargs is None:
            return None
        key = _key(dead.task, dead.args, dead.kwargs)
        with self._lock:
            for run in reversed(self.runs):
                if (run.error is not None and error_type(run.error) == dead.error_type
                        and _key(run.task, run.args, run.kwargs) == key):
                    return run.error
        return None
