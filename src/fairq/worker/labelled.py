"""A sync task function as the worker's thread pool runs it, with what the time-limit watchdog and
hand-backs need to know about it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .threads import Job


def was_handed_back(job: Job) -> bool:
    """Was this job handed back to the queue by a worker before? (Kept queued on a second hand-back.)"""
    return isinstance(job.fn, Labelled) and job.fn.handed_back > 0


class Labelled:
    """A sync task function with what the time-limit watchdog and hand-backs need to know about it."""

    __slots__ = ("fn", "label", "time_limit", "handed_back")

    def __init__(self, fn: Callable[..., Any], label: str, time_limit: float | None, handed_back: int = 0) -> None:
        self.fn = fn
        self.label = label
        self.time_limit = time_limit
        self.handed_back = handed_back  #: how often a worker handed this task back before

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)
