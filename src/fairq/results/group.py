"""``fairq.group([...]).send()``: many calls sent as batches, their results gathered in order.

Consecutive calls of one task are one pipelined batch (``send_many``), each asking for its
result; the handle waits on every result at once on the app's loop, so gathering a thousand
costs one wait, not a thousand.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any

from ..errors import ConfigurationError, ResultTimeout
from ..task import BoundCall, Call
from .handle import Handle


class Group:
    """Calls to send together (:func:`group`)."""

    def __init__(self, calls: Iterable[BoundCall]) -> None:
        self.calls = list(calls)
        for call in self.calls:
            if not isinstance(call, BoundCall):
                raise ConfigurationError(f"group() takes task.call(...) items, got {call!r}")

    def send(self) -> GroupHandle:
        """Send every call, asking for its result; returns once the broker confirmed them all."""
        handles: list[Handle] = []
        for task, run in groupby(self.calls, key=lambda c: c.task):
            sent = task.send_many([Call(c.args, c.kwargs) for c in run], result=True)
            handles.extend(sent)
        return GroupHandle(handles)


def group(calls: Iterable[BoundCall]) -> Group:
    """A group of calls (``task.call(*args, **kwargs)`` each): ``group([...]).send()`` → :class:`GroupHandle`."""
    return Group(calls)


class GroupHandle:
    """The handles of a sent group, in the order of its calls."""

    def __init__(self, handles: Sequence[Handle]) -> None:
        self.handles = list(handles)

    def __len__(self) -> int:
        return len(self.handles)

    def results(self, timeout: float | None = None) -> list[Any]:
        """Every result, in the calls' order, once all are in (ResultTimeout after ``timeout`` seconds);
        the first failed task, in that order, raises its TaskFailed."""
        self._gather(timeout)
        return [h.result() for h in self.handles]

    async def results_async(self, timeout: float | None = None) -> list[Any]:
        for client, handles in self._by_client():
            bodies = await client.collect_async(handles, timeout)
            for handle, body in zip(handles, bodies):
                handle._keep(body)
        return [h.result() for h in self.handles]

    def as_completed(self, timeout: float | None = None) -> Iterator[Handle]:
        """The handles as their results arrive (ResultTimeout once ``timeout`` seconds have passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for client, handles in self._by_client():
            pending = [h for h in handles if h._outcome is None]
            for handle in handles:
                if handle._outcome is not None:
                    yield handle
            while pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done = set(client.wait(pending, left))
                if not done:
                    raise ResultTimeout(f"{len(pending)} of {len(self.handles)} results did not arrive "
                                        f"within {timeout:g} s")
                for handle in pending:
                    if handle in done:
                        handle._keep(client.get(handle))
                        yield handle
                pending = [h for h in pending if h not in done]

    def _gather(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for client, handles in self._by_client():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            for handle, body in zip(handles, client.collect(handles, left)):
                handle._keep(body)

    def _by_client(self) -> list[tuple[Any, list[Handle]]]:
        """The handles still without a result, by the inbox they wait on (one per app)."""
        groups: dict[int, tuple[Any, list[Handle]]] = {}
        for handle in self.handles:
            client = handle._require()
            groups.setdefault(id(client), (client, []))[1].append(handle)
        return list(groups.values())
