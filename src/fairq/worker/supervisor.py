"""The ``fairq worker`` parent: starts N worker processes and keeps N alive.

A child that dies (kill -9, segfault, lost broker) is replaced at once; its
unacked tasks are already back in the queue. A child that dies before it ever
consumed (it tells the supervisor through a pipe) is restarted with growing
delays, so a broken module or an unreachable dependency does not spin the CPU.
SIGTERM/SIGINT: forwarded once to every child as SIGTERM (graceful); a second
signal is forwarded again, which makes the children abort; the supervisor then exits
130 (EXIT_ABORTED), as a shell reports a process stopped by Ctrl-C, not 0: an abort
left tasks unfinished (the broker redelivers them).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from ..config import BROKER_ENV
from .config import EXIT_CONFIG, EXIT_RECYCLE, READY_FD_ENV, WorkerConfig

if TYPE_CHECKING:
    from ..metrics.endpoint import MetricsEndpoint

log = logging.getLogger("fairq.supervisor")

MAX_RESTART_DELAY = 30.0
#: Exit code after a second SIGTERM/SIGINT aborted the workers (128 + SIGINT).
EXIT_ABORTED = 130


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    failed_starts: int = 0

    def became_ready(self) -> bool:
        """Did it ever consume? (Reads its pipe once, then closes it.)"""
        try:
            return bool(os.read(self.ready_fd, 1))
        except BlockingIOError:
            return False
        finally:
            os.close(self.ready_fd)


class Supervisor:
    """``metrics``: the open ``/metrics`` endpoint the children write to (--metrics-port), if any."""

    def __init__(self, config: WorkerConfig, broker_url: str, metrics: MetricsEndpoint | None = None) -> None:
        self.config = config
        self.broker_url = broker_url
        self.metrics = metrics
        self.children: dict[int, Child] = {}
        self.signals = 0
        self.restarts = 0

    def _spawn(self, index: int, failed_starts: int = 0) -> None:
        ready_r, ready_w = os.pipe()
        os.set_blocking(ready_r, False)
        env = {**os.environ, BROKER_ENV: self.broker_url, READY_FD_ENV: str(ready_w),
               **(self.metrics.child_env() if self.metrics is not None else {})}
        cmd = [sys.executable, "-m", "fairq.worker.child", self.config.to_json(), str(index)]
        try:
            process = subprocess.Popen(cmd, env=env, pass_fds=(ready_w,))
        finally:
            os.close(ready_w)
        self.children[process.pid] = Child(index, process, ready_r, failed_starts)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        what = "stopping gracefully" if self.signals == 1 else "aborting"
        log.info("fairq worker: %s %s", signal.Signals(signum).name, what)
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Run until signalled and every child has exited; returns the process exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self.config.processes):
            self._spawn(index)
        exit_code = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if self.metrics is not None:
                self.metrics.process_exited(pid)  # before a replacement with the same process number starts
            code = os.waitstatus_to_exitcode(status)
            child.process.returncode = code
            ready = child.became_ready()
            if self.signals:
                continue
            if code == EXIT_CONFIG:
                log.error("fairq worker: process %d cannot start (see above); stopping all", child.index + 1)
                exit_code = 1
                self._on_signal(signal.SIGTERM, None)
                continue
            if code == EXIT_RECYCLE:
                log.info("fairq worker: replacing process %d (pid %d): a task overran its time limit", child.index + 1, pid)
                self.restarts += 1
                self._spawn(child.index)
                continue
            failed = 0 if ready else child.failed_starts + 1
            delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (failed - 1)) if failed else 0.0
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.warning("fairq worker: process %d (pid %d) died with %s; restarting%s", child.index + 1, pid, how,
                        f" in {delay:.1f} s" if delay else "")
            if delay:
                time.sleep(delay)
            if not self.signals:
                self.restarts += 1
                self._spawn(child.index, failed)
        return EXIT_ABORTED if self.signals >= 2 else exit_code
