"""The worker's log lines about single tasks: start and end at info, a failed attempt at warning.

One line each, so ``grep MESSAGE_ID`` over a worker's log tells a task's story;
the traceback of a failure only at debug (it is stored in the dead letter anyway).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..task import Task
from .hooks import Event, Finished, Hooks, Started
from .settlement import Settlement

log = logging.getLogger("fairq.task")


def wanted() -> bool:
    """Are start/end lines logged? (Checked before building them: most workers run at warning.)"""
    return log.isEnabledFor(logging.INFO)


def subscribe(hooks: Hooks) -> None:
    """Log each task's start and end through the worker's hooks, while info is on."""
    hooks.subscribe(line, Started, Finished, when=wanted)


def line(event: Event) -> None:
    """A task's start or end, at info."""
    if isinstance(event, Started):
        log.info("%s: start %s %s", event.worker, event.task, event.message_id)
    elif isinstance(event, Finished):
        log.info("%s: end %s %s %s %.3f s", event.worker, event.task, event.message_id, event.outcome, event.seconds)


def failed(worker: str, label: str, message_id: str, task: Task[Any, Any] | None, attempt: int,
           exc: BaseException, settlement: Settlement) -> Settlement:
    """Log a failed attempt (error, attempt x/y, what happens next); ``settlement`` without its note,
    which this line has said already."""
    attempts = task.max_retries + 1 if task is not None else 1
    log.warning("%s: %s %s attempt %d/%d failed: %s: %s; %s", worker, label, message_id, attempt, attempts,
                type(exc).__name__, exc, settlement.note)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: %s %s attempt %d traceback:", worker, label, message_id, attempt, exc_info=exc)
    return dataclasses.replace(settlement, note="")
