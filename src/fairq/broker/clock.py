"""A clock a test moves by hand, for the in-process backend's delays (no sleeping, no timers)."""

from __future__ import annotations


class ManualClock:
    """A clock a test moves by hand (monotonic seconds); pass it to :class:`MemoryStore`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
