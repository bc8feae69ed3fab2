"""Tasks for benchmarks/rpc.py: each reports the moment it started."""

from __future__ import annotations

import os
import time

import fairq

app = fairq.App()


@app.task(name="rpc.stamp", queue="rpc", max_retries=0)
def stamp() -> float:
    """Returns when it started (wall clock: the caller on the same host compares it with its own)."""
    return time.time()


@app.task(name="rpc.mark", queue="rpc", max_retries=0)
def mark(tag: str) -> None:
    """Appends ``tag`` and when it started to $RPC_JOURNAL: how a bare send's start is seen."""
    now = time.time()
    with open(os.environ["RPC_JOURNAL"], "a") as journal:
        journal.write(f"{tag} {now}\n")
