"""The dashboard's live side: one event listener, the timeline it feeds, and every open page's stream.

Each tick (a tenth of a second) the hub takes what the listener received, folds it into the
:class:`~fairq.dashboard.timeline.Timeline`, and sends every page the same encoded delta: the
work of a tick is done once, whatever the number of pages. A page that just connected gets the
whole window first (a snapshot). A page that reads too slowly is cut off rather than buffered
without end; its browser reconnects and starts again from a snapshot.

The broker's state goes to the pages as it changes (``status``): the listener reconnects by
itself, and the page shows a banner meanwhile. Nothing sent names a password (URLs redacted).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any

from ..broker import Backend
from ..config import redact
from ..events import EventStream, WorkerEvent
from .timeline import PATTERNS, Timeline

__all__ = ["Client", "Hub", "sse"]

log = logging.getLogger("fairq.dashboard")

#: Seconds between two deltas: what the page's lag costs at most beyond the workers' own flush.
TICK = 0.1
#: Messages a page may have waiting before it is cut off (at one a tick: 20 s behind).
CLIENT_BACKLOG = 200
#: Seconds of silence after which a page gets a comment line, so proxies and browsers keep the stream.
PING = 15.0


def sse(kind: str, data: Any) -> str:
    """One server-sent event: its name and a JSON payload on one line."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Client:
    """One open page's stream: what waits to be sent to it."""

    def __init__(self) -> None:
        self._waiting: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()
        #: It fell too far behind, or the dashboard stops: its stream ends.
        self.closed = False

    def push(self, text: str) -> None:
        if len(self._waiting) >= CLIENT_BACKLOG:
            self.close()
            return
        self._waiting.append(text)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._waiting.clear()
        self._ready.set()

    async def next(self, timeout: float = PING) -> str | None:
        """What to send next (all that waits, joined), ``""`` after ``timeout`` of silence, None once closed."""
        if not self._waiting and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return ""
        if self.closed:
            return None
        text = "".join(self._waiting)
        self._waiting.clear()
        return text


class Hub:
    """Listens to ``backend``'s events and keeps every page's timeline live (see the module docstring)."""

    def __init__(self, backend: Backend, url: str, *, window: float = 300.0, tick: float = TICK) -> None:
        self.backend = backend
        self.url = redact(url)
        self.timeline = Timeline(window)
        self.tick = tick
        #: Queues named by the workers' events: the dead-letter panel offers them even where the
        #: backend cannot list queues.
        self.queues_seen: set[str] = set()
        self._clients: set[Client] = set()
        self._stream: EventStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._status: dict[str, Any] = {}

    async def start(self) -> None:
        self._stream = EventStream(self.backend, PATTERNS, require_broker=False)
        await self._stream.__aenter__()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self.close_clients()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._stream is not None:
            await self._stream.close()
            self._stream = None

    def close_clients(self) -> None:
        """End every page's stream (the server is about to stop: it would otherwise wait on them)."""
        for client in list(self._clients):
            client.close()
        self._clients.clear()

    # -- pages -----------------------------------------------------------------------------------

    def subscribe(self) -> Client:
        """A new page's stream, starting with the broker's state and the whole window."""
        client = Client()
        now = time.time()
        client.push(sse("status", self.status()))
        client.push(sse("snapshot", self.timeline.snapshot(now)))
        self._clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def status(self) -> dict[str, Any]:
        """The broker as the pages see it: where (redacted), connected or not, and why not."""
        stream = self._stream
        connected = bool(stream and stream.connected)
        problem = stream.problem if stream else None
        if not connected and problem is None:
            problem = "connecting to the broker"
        return {"broker": self.url, "connected": connected, "problem": redact(problem) if problem else None}

    # -- the tick --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.step(time.time())
            except Exception:  # a bug here must not stop the pages' updates for good
                log.exception("dashboard: a tick failed")

    def step(self, now: float) -> None:
        """One tick: fold what arrived, send what changed."""
        if self._stream is not None:
            for event in self._stream.take():
                if isinstance(event, WorkerEvent):
                    self.queues_seen.update(event.queues)
                elif event.queue not in self.queues_seen:
                    self.queues_seen.add(event.queue)
                self.timeline.add(event)
        status = self.status()
        if status != self._status:
            self._status = status
            self._broadcast(sse("status", status))
        delta = self.timeline.delta(now)
        if delta is not None:
            self._broadcast(sse("timeline", delta))

    def _broadcast(self, text: str) -> None:
        for client in list(self._clients):
            client.push(text)
            if client.closed:
                self._clients.discard(client)
