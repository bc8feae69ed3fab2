"""Tools every broker-facing test shares: task journals, real `fairq worker` subprocesses, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The task module the worker subprocesses run (tests/support/tasks_module.py).
TASKS = Path(__file__).with_name("tasks_module.py")


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


class Journal:
    """Lines that tasks of tasks_module.py append: 'start|done TAG PID WORKER TIME'."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self, kind: str | None = None) -> list[list[str]]:
        if not self.path.exists():
            return []
        rows = [line.split() for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if kind is None or r[0] == kind]

    def tags(self, kind: str) -> list[str]:
        return [r[1] for r in self.entries(kind)]

    def times(self, kind: str, tag: str) -> list[float]:
        return [float(r[4]) for r in self.entries(kind) if r[1] == tag]


class WorkerProcess:
    """A real ``fairq worker`` subprocess whose stderr is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "fairq", "worker", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def count(self, needle: str) -> int:
        return sum(needle in line for line in list(self.lines))

    def wait_consuming(self, processes: int = 1, timeout: float = 30.0) -> None:
        wait_for(lambda: self.count(" consuming ") >= processes or self.process.poll() is not None, timeout,
                 what="workers to start consuming")
        assert self.process.poll() is None, f"worker exited early:\n{self.output()}"

    def children(self) -> list[int]:
        """PIDs of the worker processes the supervisor is running now."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@contextmanager
def worker_process(*args: str, env: dict[str, str] | None = None, ready: int | None = 1) -> Iterator[WorkerProcess]:
    """Run ``fairq worker ARGS``; wait until ``ready`` processes consume; always stop it."""
    # Info by default: tests wait for lines (adaptive prefetch, replacements) a worker logs at info.
    full_env = {"FAIRQ_LOG_LEVEL": "info", **os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    worker = WorkerProcess(list(args), full_env)
    try:
        if ready:
            worker.wait_consuming(ready)
        yield worker
    finally:
        worker.stop()
        for child in worker.children():
            os.kill(child, signal.SIGKILL)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fairq", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
