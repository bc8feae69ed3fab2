"""What a benchmark run tells its worker and sender processes, through the environment."""

from __future__ import annotations

import os

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def broker_url() -> str:
    """The broker every system uses (``$BENCH_BROKER_URL``)."""
    return os.environ.get("BENCH_BROKER_URL", DEFAULT_URL)


def queue() -> str:
    """This run's uniquely named queue (``$BENCH_QUEUE``)."""
    return os.environ.get("BENCH_QUEUE", "bench.systems.scratch")


def mode() -> str:
    """A system's variant (``$BENCH_MODE``): e.g. ``default``, ``fair``, ``confirm``, or a queue kind."""
    return os.environ.get("BENCH_MODE", "default")
