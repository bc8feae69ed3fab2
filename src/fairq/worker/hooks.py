"""Typed, observer-only hooks: what happens to each delivery on a worker, as it happens.

Subscribers watch; they never steer. A subscriber's exception is logged (the first
one of each subscriber, with its traceback) and never reaches the worker, and a
subscriber cannot change what the worker does with a delivery. Logs (tasklog.py),
the demo's recorder and the observability of the next issues subscribe here.

Every event carries ``message_id``, ``task`` (the task name; ``"raw"`` for a plain
message; as the ``fairq-task`` header says until the body is decoded), ``queue``,
``worker`` (the worker's name), ``attempt`` (1 = first run; a retry's copy runs as
attempt 2, ...), ``at`` (``time.time()`` of the moment) and ``sent`` (the producer's
timestamp, ``time.time()`` seconds, None if the message has none).

One delivery's story, in order:

- :class:`Received`: the pipeline took the delivery (not for deliveries requeued at
  once because the worker is stopping).
- then exactly one of:
  - :class:`HandedBack` (``how``): not run here. ``"requeued"``: at its place, for any
    worker (shutdown, lost connection); ``"copy"``: a fresh copy to the back of the queue
    (an adaptive window rebalancing or parking); ``"lost"``: its channel was gone, the
    broker has it again.
  - :class:`DeadLettered` without a run: refused (not a fairq message, undecodable,
    unknown task, wrong arguments, delivery limit); ``reason`` is the dead-letter reason.
  - :class:`Started` (a sync task's when its thread starts it, an async task's when it
    gets a slot), then :class:`Finished` (``outcome`` ``"ok"``, ``"retry"`` or
    ``"dead-lettered"``; ``seconds`` it ran), then for a retry :class:`Retried`
    (``delay``) and for a dead letter :class:`DeadLettered`, each once the broker has
    confirmed the copy.
- A redelivery of a message this worker already ran (duplicates.py) is Received and then
  settled with the kept result without a run: Retried or DeadLettered if that is what
  the result says, nothing more for an ack.
- If a settlement cannot be applied because the connection is gone, its Retried /
  DeadLettered come when the redelivered copy takes the kept result.
- A message that comes back unsettled is Received again as a new story. Where the
  broker keeps no count of such returns, the backend counts them in a copy at the back
  of the queue (``Delivery.redeliveries``) before the pipeline sees anything: only the
  copy has a story, and no ``HandedBack`` fires for the original.

Subscribers run on the worker's event loop: keep them quick (hand the event to a
queue if there is real work to do).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("fairq.worker")


@dataclass(frozen=True)
class Event:
    """What every hook event says about its delivery."""

    message_id: str
    task: str
    queue: str
    worker: str
    attempt: int
    at: float
    sent: float | None


@dataclass(frozen=True)
class Received(Event):
    """The pipeline took a delivery."""


@dataclass(frozen=True)
class Started(Event):
    """A slot started running the task."""

    slot: int = -1  #: which slot, 0 … threads - 1 (slots.Running.index)


@dataclass(frozen=True)
class Finished(Event):
    """The task's run ended; ``outcome`` is what its end calls for."""

    outcome: str  #: "ok", "retry" or "dead-lettered"
    seconds: float  #: how long it ran
    slot: int = -1  #: which slot ran it (as in Started)
    error: str = ""  #: for a failed run, ``Type: message`` of what it raised


@dataclass(frozen=True)
class Retried(Event):
    """A copy for the next attempt is confirmed, to run after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True)
class DeadLettered(Event):
    """A copy is confirmed in the queue's dead-letter queue."""

    reason: str  #: the dead-letter reason (message.REASON_*)


@dataclass(frozen=True)
class HandedBack(Event):
    """The delivery went back to the queue without a run here."""

    how: str  #: "requeued", "copy" or "lost"


Subscriber = Callable[[Event], None]


class _Subscription:
    __slots__ = ("fn", "kinds", "when", "failed")

    def __init__(self, fn: Subscriber, kinds: tuple[type[Event], ...], when: Callable[[], bool] | None) -> None:
        self.fn = fn
        self.kinds = kinds or (Event,)
        self.when = when
        self.failed = 0

    def wants(self, kind: type[Event]) -> bool:
        return issubclass(kind, self.kinds) and (self.when is None or self.when())


class Hooks:
    """The subscribers of one worker."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._subs: list[_Subscription] = [_Subscription(fn, (), None) for fn in subscribers]

    def subscribe(self, fn: Subscriber, *kinds: type[Event], when: Callable[[], bool] | None = None) -> None:
        """Call ``fn`` with each event of ``kinds`` (default: all), while ``when()`` (if given) is true.

        ``when`` lets a subscriber that is off most of the time (info log lines) spare the
        worker building events: a sync task's Started costs the loop a wake-up."""
        self._subs.append(_Subscription(fn, tuple(kinds), when))

    def unsubscribe(self, fn: Subscriber) -> None:
        self._subs = [s for s in self._subs if s.fn is not fn]

    def wants(self, kind: type[Event]) -> bool:
        """Does any subscriber want events of ``kind`` now? (Checked before building one.)"""
        return any(s.wants(kind) for s in self._subs)

    def fire(self, event: Event) -> None:
        """Hand ``event`` to its subscribers; their errors are logged, never raised."""
        kind = type(event)
        for sub in self._subs:
            if not sub.wants(kind):
                continue
            try:
                sub.fn(event)
            except Exception:
                sub.failed += 1
                if sub.failed == 1:
                    log.exception("%s: hook subscriber %r failed on %s (logged once; it stays subscribed)",
                                  event.worker, sub.fn, kind.__name__)

    def failures(self, fn: Subscriber) -> int:
        """How often ``fn`` raised (it is logged only the first time)."""
        return sum(s.failed for s in self._subs if s.fn is fn)
