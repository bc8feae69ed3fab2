"""The one task every system runs, and its cheap cross-process event log.

Each finished task appends one line ``i sent start end pid`` (``time.time()``
seconds) to the file named by ``$BENCH_EVENTS`` with a single ``write`` on an
``O_APPEND`` descriptor, so lines from many processes never interleave. The
descriptor is opened lazily per process (after any fork).
"""

from __future__ import annotations

import os
import time

_fds: dict[int, int] = {}


def _fd() -> int | None:
    path = os.environ.get("BENCH_EVENTS")
    if not path:
        return None
    pid = os.getpid()
    if pid not in _fds:
        _fds[pid] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _fds[pid]


def record(i: int, sent: float, start: float, end: float) -> None:
    """Append one event line (a no-op when ``$BENCH_EVENTS`` is unset)."""
    fd = _fd()
    if fd is not None:
        os.write(fd, f"{i} {sent:.6f} {start:.6f} {end:.6f} {os.getpid()}\n".encode())


def run_task(i: int, seconds: float, sent: float) -> None:
    """The benchmark task: note the start, sleep ``seconds`` (0 = no-op), note the end."""
    start = time.time()
    if seconds > 0:
        time.sleep(seconds)
    record(i, sent, start, time.time())
