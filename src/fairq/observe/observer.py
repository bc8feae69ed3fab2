"""Keeping a :class:`~fairq.observe.model.Picture` live: the backend's events as they come, its counts on a timer.

    async with Observer(backend, ["images"]) as observer:
        ...                       # observer.picture is kept up to date on this loop
        data = observer.as_json()

:func:`once` is one look (``fairq status``): counts now, events for ``wait`` seconds (long enough
for every live worker's next heartbeat), counts again, and the picture as it stands.

Stopping closes the event stream rather than cancelling a read that waits on it: the stream's
own close ends the reader's ``async for``, and nothing is left half-cancelled inside the listener.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from ..broker import Backend, Broker, open_backend
from ..errors import BrokerError
from ..events import DEFAULT_HEARTBEAT, Event, EventStream, listen
from .counts import DEFAULT_MANAGEMENT_URL, count
from .model import Picture

__all__ = ["DEFAULT_WAIT", "Observer", "once"]

log = logging.getLogger("fairq.observe")

#: Seconds :func:`once` listens by default: one heartbeat interval and a little, so every live worker is heard.
DEFAULT_WAIT = DEFAULT_HEARTBEAT + 0.5


class Observer:
    """A :class:`Picture` of ``backend`` (a Backend or a broker URL), fed while the observer is entered.

    ``queues``: the queues of interest (empty: every one the backend lists or the workers announce).
    ``count_every``: seconds between the backend's counts. ``require_broker``: entering fails if the
    broker cannot be reached; False to start anyway (``problem`` says why it sees nothing).
    """

    def __init__(self, backend: Backend | str, queues: Sequence[str] = (), *,
                 management_url: str | None = DEFAULT_MANAGEMENT_URL, count_every: float = 1.0,
                 require_broker: bool = True) -> None:
        self.backend = open_backend(backend, management_url=management_url) if isinstance(backend, str) else backend
        self.picture = Picture(queues)
        self.count_every = count_every
        self.require_broker = require_broker
        #: Why the counts could not be read last time; None when they were.
        self.counts_problem: str | None = None
        #: Set whenever the picture changed (an event, new counts); a reader clears it.
        self.changed = asyncio.Event()
        self._stream: EventStream | None = None
        self._broker: Broker | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_problem: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Observer:
        self._stream = listen(self.backend, ["#"], require_broker=self.require_broker)
        await self._stream.__aenter__()
        try:
            await self.refresh()
            if self.counts_problem is not None and self.require_broker:
                raise BrokerError(self.counts_problem)
        except BaseException:
            await self._stream.close()
            await self._close_broker()
            raise
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._poll())]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and counting; the picture stays as it was."""
        if not self._stop.is_set():
            self._last_problem = self.problem  # as it was while open: closing disconnects
        self._stop.set()
        if self._stream is not None:
            await self._stream.close()  # ends _read's iteration
        for task in self._tasks:
            await asyncio.gather(task, return_exceptions=True)
        self._tasks = []
        await self._close_broker()

    # -- feeding ---------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` with each event, after the picture took it in (for a live timeline).
        Its errors are logged, never raised."""
        self._subscribers.append(callback)

    async def _read(self) -> None:
        assert self._stream is not None
        async for event in self._stream:
            self.picture.apply(event)
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    log.exception("an observer's subscriber failed on %s", event.key)
            self.changed.set()

    async def _poll(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), self.count_every)
                return
            except asyncio.TimeoutError:
                pass
            await self.refresh()

    async def refresh(self) -> None:
        """Count the backend's queues now (reconnecting if the last try failed); a failure goes to
        :attr:`counts_problem`, never raised."""
        picture = self.picture
        try:
            if self._broker is None:
                broker = self.backend.broker()
                try:
                    await broker.connect()
                except BaseException:
                    await broker.close()
                    raise
                self._broker = broker
            announced = [q for view in picture.worker_views() for q in view.queues]
            counts = await count(self._broker, picture.interest, also=announced)
        except BrokerError as exc:
            self.counts_problem = str(exc)
            await self._close_broker()
            return
        self.counts_problem = None
        picture.set_counts(counts)
        self.changed.set()

    async def _close_broker(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.close()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def problem(self) -> str | None:
        """What keeps the picture from being whole now (no events, no counts), or None."""
        if self._stop.is_set():
            return self._last_problem
        stream = self._stream
        if stream is not None and not stream.connected:
            return f"not listening to events: {stream.problem or 'connecting'}"
        return self.counts_problem

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        """:meth:`Picture.as_json` and how the observer fares (``problem``, what its listener counted)."""
        data = self.picture.as_json(now)
        stats = self._stream.stats if self._stream is not None else None
        data["problem"] = self.problem
        data["events"] = {"received": self.picture.events,
                          "dropped": stats.dropped if stats else 0, "missed": stats.missed if stats else 0,
                          "undecodable": stats.undecodable if stats else 0}
        return data


async def once(backend: Backend | str, queues: Sequence[str] = (), *, wait: float = DEFAULT_WAIT,
               management_url: str | None = DEFAULT_MANAGEMENT_URL) -> Observer:
    """One look: the backend's counts, its events for ``wait`` seconds, counts again; the observer, closed,
    with its picture (``fairq status``)."""
    observer = Observer(backend, queues, management_url=management_url, count_every=max(wait, 0.5) + 1)
    async with observer:
        if wait > 0:
            await asyncio.sleep(wait)
            await observer.refresh()
    return observer
