"""How a delivery ends: decided once, then applied to the delivery (or to its redelivered copy).

Keeping the decision apart from applying it lets a worker that lost its
connection mid-task hand the finished result to the copy the broker redelivers,
instead of running the task a second time.
"""

from __future__ import annotations

import enum
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import message as wire
from ..errors import Reject, Retry
from ..task import Task


class Outcome(enum.Enum):
    ACK = "ok"  #: done
    RETRY = "retry"  #: publish a copy with attempt + 1 after ``delay``, then ack
    DEAD = "dead-lettered"  #: copy to QUEUE.dlq with ``headers``, then ack
    REQUEUE = "requeued"  #: publish a copy at the back of the queue with ``headers``, then ack (a hand-back)


@dataclass(frozen=True)
class Settlement:
    outcome: Outcome
    headers: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    note: str = ""
    #: What the task returned, kept only for a caller that asked for the result (replies.py).
    value: Any = None


ACK = Settlement(Outcome.ACK)


def dead(reason: str, worker: str, **details: Any) -> Settlement:
    return Settlement(Outcome.DEAD, wire.dead_letter_headers(reason, worker=worker, **details),
                      note=f"{reason}: {details.get('detail') or details.get('error') or ''}")


def after_failure(task: Task[Any, Any] | None, attempt: int, exc: BaseException, worker: str,
                  rng: Callable[[float, float], float]) -> Settlement:
    """Retry with backoff when :func:`retry_verdict` allows it; else dead-letter with the error.

    ``attempt`` is the number of the run that just failed (1 = first run). The note
    says what happens next (the worker's failure log line ends with it).
    """
    if isinstance(exc, Reject):
        return dead(wire.REASON_REJECTED, worker, error=exc, attempts=attempt)
    retry, why = retry_verdict(task, attempt, exc)
    if retry:
        assert task is not None
        delay = exc.delay if isinstance(exc, Retry) and exc.delay is not None else task.retry_delay(attempt, rng)
        return Settlement(Outcome.RETRY, {wire.H_ATTEMPT: attempt}, delay=max(0.0, delay),
                          note=f"retry {attempt}/{task.max_retries} in {max(0.0, delay):.1f} s")
    reason = wire.REASON_FAILED if task is not None else wire.REASON_RAW_FAILED
    settlement = dead(reason, worker, error=exc, attempts=attempt,
                      traceback_text="".join(traceback.format_exception(exc)))
    return replace(settlement, note=f"dead-lettered ({reason}: {why})")


def retry_verdict(task: Task[Any, Any] | None, attempt: int, exc: BaseException) -> tuple[bool, str]:
    """Whether a run that failed with ``exc`` is retried, and why not. The one place that decides it.

    In order: :class:`~fairq.Reject` is never retried; an explicit :class:`~fairq.Retry` is retried
    while retries remain; a type in the task's ``dont_retry`` is not retried (it wins over
    ``retry_on``); a type in ``retry_on`` is retried while retries remain; anything else is not.
    Raw handlers (``task`` None) are never retried.
    """
    if task is None:
        return False, "raw handlers are not retried"
    if isinstance(exc, Reject):
        return False, "rejected by the task"
    left = attempt <= task.max_retries
    exhausted = f"no retries left ({task.max_retries} allowed)"
    if isinstance(exc, Retry):
        return left, "" if left else exhausted
    if isinstance(exc, task.dont_retry):
        return False, f"{type(exc).__name__} is not retried (dont_retry)"
    if not isinstance(exc, task.retry_on):
        return False, f"{type(exc).__name__} is not retried (not in retry_on)"
    return left, "" if left else exhausted


class Remembered:
    """Settlements of deliveries whose channel died before they could be applied, by (message id, attempt).

    Bounded: a redelivered copy comes back within seconds or goes to another worker.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[tuple[str, int], Settlement] = OrderedDict()
        self._size = size

    def add(self, key: tuple[str, int], settlement: Settlement) -> None:
        self._items[key] = settlement
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def take(self, key: tuple[str, int]) -> Settlement | None:
        return self._items.pop(key, None)
