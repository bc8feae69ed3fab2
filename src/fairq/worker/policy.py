"""Dispatch policies: how many unacknowledged tasks a worker process may hold."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError

POLICIES = ("fair", "unlimited", "adaptive")
#: The policy a worker uses unless told otherwise: ``adaptive`` since its benchmark bars held
#: (fair on long tasks, as fast as a deep fixed prefetch on short ones; BENCHMARKS.md).
DEFAULT_POLICY = "adaptive"


@dataclass(frozen=True)
class Prefetch:
    """A parsed ``--prefetch`` value."""

    policy: str  #: "fair", "unlimited" or "fixed"
    fixed: int = 0

    @classmethod
    def parse(cls, text: str) -> Prefetch:
        value = text.strip().lower()
        if value in POLICIES:
            return cls(value)
        try:
            n = int(value)
        except ValueError:
            raise ConfigurationError(f"--prefetch must be fair, adaptive, unlimited or a number >= 1, got {text!r}") from None
        if n < 1:
            raise ConfigurationError(f"--prefetch N must be >= 1 (use 'unlimited' for no cap), got {n}")
        return cls("fixed", n)

    def count(self, slots: int) -> int:
        """The AMQP prefetch count for a consumer of a process with ``slots`` task slots (0 = no cap).

        ``adaptive`` starts fair; the worker deepens it when tasks turn out short.
        """
        if self.policy in ("fair", "adaptive"):
            return slots
        if self.policy == "unlimited":
            return 0
        return self.fixed

    def __str__(self) -> str:
        return str(self.fixed) if self.policy == "fixed" else self.policy
