"""Tasks the integration tests run in real worker processes.

Each task appends 'start|done TAG PID WORKER' to the file named by $FAIRQ_TEST_JOURNAL,
so tests see what ran where without relying on timing.
"""

from __future__ import annotations

import asyncio
import os
import time

import fairq

app = fairq.App(delivery_limit=int(os.environ.get("FAIRQ_TEST_DELIVERY_LIMIT", "5")))


def _log(kind: str, tag: str) -> None:
    line = f"{kind} {tag} {os.getpid()} {fairq.current_worker.get() or '-'} {time.time():.6f}\n"
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


@app.task(name="explode", max_retries=0)
def explode(message: str) -> None:
    raise ValueError(message)


def _runs(tag: str) -> int:
    path = os.environ["FAIRQ_TEST_JOURNAL"]
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split()[:2] == ["start", tag])


@app.task(name="flaky", max_retries=5, retry_backoff=0.2)
def flaky(tag: str, failures: int) -> None:
    """Fails its first ``failures`` runs, then succeeds."""
    _log("start", tag)
    if _runs(tag) <= failures:
        raise RuntimeError(f"failure {_runs(tag)} of {failures}")
    _log("done", tag)


@app.task(name="ask_retry", max_retries=2)
def ask_retry(tag: str, delay: float) -> None:
    _log("start", tag)
    if _runs(tag) == 1:
        raise fairq.Retry(delay=delay)
    _log("done", tag)


@app.task(name="refuse")
def refuse(tag: str) -> None:
    _log("start", tag)
    raise fairq.Reject("bad input, retrying will not help")


@app.task(name="always_fails", max_retries=2, retry_backoff=0.1)
def always_fails(tag: str) -> None:
    _log("start", tag)
    raise KeyError(tag)


@app.task(name="crash")
def crash(tag: str) -> None:
    """Kills its own worker process, every time."""
    _log("start", tag)
    os._exit(9)


@app.task(name="slow_sync", time_limit=0.5, max_retries=0)
def slow_sync(tag: str, seconds: float) -> None:
    _log("start", tag)
    time.sleep(seconds)
    _log("done", tag)


@app.task(name="slow_async", time_limit=0.5, max_retries=0)
async def slow_async(tag: str, seconds: float) -> None:
    _log("start", tag)
    await asyncio.sleep(seconds)
    _log("done", tag)


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


@app.task(name="buggy", max_retries=3, retry_backoff=0.1)
def buggy(tag: str) -> None:
    """A bug: a TypeError, which no number of retries fixes."""
    _log("start", tag)
    len(5)  # type: ignore[arg-type]


@app.task(name="no_value_retry", max_retries=3, retry_backoff=0.1, dont_retry=(ValueError,))
def no_value_retry(tag: str) -> None:
    _log("start", tag)
    raise ValueError(f"{tag} is not a valid tag")


def dots(body: bytes) -> None:
    """The article's worker callback as a raw handler (``--raw-handler tasks_module.py:dots``), journalled:
    the body is the tag, and each '.' is ``$FAIRQ_DOT_SECONDS`` of work (default 0.1)."""
    tag = body.decode(errors="replace")
    _log("start", tag)
    time.sleep(body.count(b".") * float(os.environ.get("FAIRQ_DOT_SECONDS", "0.1")))
    _log("done", tag)
