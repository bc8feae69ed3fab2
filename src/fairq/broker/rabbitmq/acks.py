"""Acks of one channel, batched into as few frames as the broker's window allows."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiormq.abc import AbstractChannel

from ...errors import ChannelClosed
from .errors import reason as _reason

log = logging.getLogger("fairq.broker")


class AckBatcher:
    """The acks of one channel, sent as few frames as possible.

    Every frame is a socket write, and a worker at full speed acks thousands of
    tasks a second. While other deliveries are still held (a prefetch window
    deeper than the running tasks), acks wait up to ``DELAY`` seconds or until
    ``BATCH`` of them are pending (a quarter of the consumer's prefetch, if less:
    the broker sends more only as acks free its window, so the rest of the window
    must keep the slots busy while the batch waits and travels), then go as one
    ``multiple`` ack for every acked tag below the lowest unsettled one, and singly
    above it. When nothing else is held the broker is waiting for this ack to send
    more, so it goes at once. An ack is only ever sent for a delivery that was
    acked (after its task finished).
    """

    DELAY = 0.002
    BATCH = 64

    def __init__(self, channel: AbstractChannel, prefetch: int = 0) -> None:
        self.channel = channel
        self.batch = max(1, min(self.BATCH, prefetch // 4)) if prefetch else self.BATCH
        self._unsettled: set[int] = set()
        self._pending: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._close_when_settled = False
        #: Ack frames not yet handed to the connection, in order, and the one task that writes them.
        #: One writer per channel, because order matters: a single ack written after a ``multiple``
        #: ack that already covered its tag is PRECONDITION_FAILED (unknown delivery tag), which closes
        #: the channel and requeues everything on it, and aiormq's bounded write queue lets concurrent
        #: writers overtake each other.
        self._outbox: deque[tuple[int, bool]] = deque()
        self._writer: asyncio.Future[None] | None = None

    def delivered(self, tag: int) -> None:
        self._unsettled.add(tag)

    def settled(self, tag: int) -> None:
        """The delivery was settled some other way (rejected)."""
        self._unsettled.discard(tag)
        self._maybe_close()

    def close_when_settled(self) -> None:
        """Close the channel once every delivery on it is settled and acked (a retired consumer's)."""
        self._close_when_settled = True
        self._maybe_close()

    def _maybe_close(self) -> None:
        # An ack frame for a channel that is already closed is a connection error (CHANNEL_ERROR,
        # "expected 'channel.open'"): the broker would drop the connection and requeue everything.
        if (self._close_when_settled and not self._unsettled and not self._pending and self._writer is None
                and not self.channel.is_closed):
            self._close_when_settled = False
            asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            await self.channel.close()
        except Exception as exc:
            log.debug("closing a retired channel: %s", _reason(exc))

    def ack(self, tag: int) -> None:
        if self.channel.is_closed:
            raise ChannelClosed("ack: channel already closed")
        self._unsettled.discard(tag)
        self._pending.append(tag)
        if not self._unsettled or len(self._pending) >= self.batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.DELAY, self._flush)

    def flush(self) -> None:
        """Send pending acks now (before a close)."""
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = sorted(self._pending), []
        if self.channel.is_closed or not pending:
            return
        floor = min(self._unsettled) if self._unsettled else None
        below = [t for t in pending if floor is None or t < floor]
        acks = [(below[-1], True)] if below else []
        acks += [(t, False) for t in pending[len(below):]]
        self._outbox.extend(acks)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        try:
            while self._outbox:
                tag, multiple = self._outbox.popleft()
                await self.channel.basic_ack(tag, multiple=multiple, wait=False)
        except Exception as exc:  # the channel died: the broker requeues what it had not seen acked
            log.warning("acks lost with their channel: %s", _reason(exc))
            self._outbox.clear()
            return
        finally:
            self._writer = None
        self._maybe_close()
