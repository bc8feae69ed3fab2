"""Tasks the integration tests run in real worker processes.

Each task appends 'start|done TAG PID WORKER' to the file named by $FAIRQ_TEST_JOURNAL,
so tests see what ran where without relying on timing.
"""

from __future__ import annotations

import asyncio
import os
import time

import fairq

app = fairq.App()


def _log(kind: str, tag: str) -> None:
    line = f"{kind} {tag} {os.getpid()} {fairq.current_worker.get() or '-'}\n"
    fd = os.open(os.environ["FAIRQ_TEST_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(name="record")
def record(tag: str, seconds: float = 0.0) -> None:
    _log("start", tag)
    time.sleep(seconds)
    _log("done", tag)


@app.task(name="arecord")
async def arecord(tag: str, seconds: float = 0.0) -> None:
    _log("start", tag)
    await asyncio.sleep(seconds)
    _log("done", tag)


@app.task(name="explode")
def explode(message: str) -> None:
    raise ValueError(message)


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="gated")
def gated(tag: str, gate: str) -> None:
    """Wait until the file ``gate`` exists: lets a test hold tasks mid-run without guessing durations."""
    _log("start", tag)
    while not os.path.exists(gate):
        time.sleep(0.01)
    _log("done", tag)
