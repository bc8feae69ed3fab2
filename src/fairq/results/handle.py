"""What ``send`` returns: the message id, and the way to the task's result.

A :class:`Handle` *is* the message id — a ``str`` subclass equal to it, hashing like it, printed
and JSON-encoded as it — so code that kept the id from ``send`` keeps working, and a handle
pickles as the plain id. Only a send that asked for the result (``@app.task(result=True)``,
``send_with(result=True)``) can wait for one; the others raise :class:`~fairq.NoResult`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..errors import NoResult, ResultTimeout
from . import wire

if TYPE_CHECKING:
    from .caller import ResultClient

#: :meth:`Handle.status` answers.
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


class Handle(str):
    """The message id of a sent task (a ``str``), and its result when it was asked for."""

    _client: ResultClient | None
    _outcome: wire.Outcome | None

    def __new__(cls, message_id: str, client: ResultClient | None = None) -> Handle:
        handle = super().__new__(cls, message_id)
        handle._client = client
        handle._outcome = None
        return handle

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))

    @property
    def message_id(self) -> str:
        return str(self)

    @property
    def wants_result(self) -> bool:
        """True if the send asked for the result."""
        return self._client is not None

    def result(self, timeout: float | None = None) -> Any:
        """The task's return value, waiting up to ``timeout`` seconds (None: as long as it takes).

        Raises :class:`~fairq.TaskFailed` (the remote error) if the task failed for good,
        :class:`~fairq.ResultTimeout` if nothing came in time (the task may still run: ask again).
        """
        if self._outcome is None:
            client = self._require()
            if not client.wait([self], timeout):
                raise ResultTimeout(f"no result for {self} within {timeout:g} s")
            self._keep(client.get(self))
        assert self._outcome is not None
        return self._outcome.unwrap(self)

    async def result_async(self, timeout: float | None = None) -> Any:
        """:meth:`result` for async code: waits without blocking the caller's event loop."""
        if self._outcome is None:
            client = self._require()
            if not await client.wait_async([self], timeout):
                raise ResultTimeout(f"no result for {self} within {timeout:g} s")
            self._keep(await client.get_async(self))
        assert self._outcome is not None
        return self._outcome.unwrap(self)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result_async().__await__()

    def status(self) -> str:
        """``pending`` (no result yet: queued, running or being retried — the backends do not tell these
        apart), ``succeeded`` or ``failed``; without waiting."""
        if self._outcome is None:
            self._keep(self._require().get(self))
        if self._outcome is None:
            return PENDING
        return SUCCEEDED if self._outcome.ok else FAILED

    def _keep(self, body: bytes | None) -> None:
        if body is not None:
            self._outcome = wire.decode(body)

    def _require(self) -> ResultClient:
        if self._client is None:
            raise NoResult(f"task {self} was sent without asking for its result: use @app.task(result=True) "
                           f"or send_with(..., result=True)")
        return self._client


__all__ = ["FAILED", "PENDING", "SUCCEEDED", "Handle"]
