"""Dispatch policies: how many unacknowledged tasks a worker process may hold."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError

POLICIES = ("fair", "unlimited")


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
        if value == "adaptive":
            raise ConfigurationError("--prefetch adaptive is not available yet; use fair, unlimited or a number")
        try:
            n = int(value)
        except ValueError:
            raise ConfigurationError(f"--prefetch must be fair, unlimited or a number >= 1, got {text!r}") from None
        if n < 1:
            raise ConfigurationError(f"--prefetch N must be >= 1 (use 'unlimited' for no cap), got {n}")
        return cls("fixed", n)

    def count(self, slots: int) -> int:
        """The AMQP prefetch count for a consumer of a process with ``slots`` task slots (0 = no cap)."""
        if self.policy == "fair":
            return slots
        if self.policy == "unlimited":
            return 0
        return self.fixed

    def __str__(self) -> str:
        return str(self.fixed) if self.policy == "fixed" else self.policy
