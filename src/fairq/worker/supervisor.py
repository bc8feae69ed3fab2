"""The ``fairq worker`` parent: starts N worker processes and keeps N alive.

A child that dies (kill -9, segfault, lost broker) is replaced; its unacked
tasks are already back in the queue. Children that crash right after start are
restarted with growing delays, so a broken module does not spin the CPU.
SIGTERM/SIGINT: forwarded once to every child as SIGTERM (graceful); a second
signal is forwarded again, which makes the children abort.
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

from ..config import BROKER_ENV
from .child import EXIT_CONFIG, EXIT_RECYCLE
from .config import WorkerConfig

log = logging.getLogger("fairq.supervisor")

#: A child that lived shorter than this counts as crash-looping.
QUICK_DEATH_SECONDS = 5.0
MAX_RESTART_DELAY = 30.0


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    quick_deaths: int = 0


class Supervisor:
    def __init__(self, config: WorkerConfig, broker_url: str) -> None:
        self.config = config
        self.broker_url = broker_url
        self.children: dict[int, Child] = {}
        self.signals = 0
        self.restarts = 0

    def _spawn(self, index: int, quick_deaths: int = 0) -> None:
        env = {**os.environ, BROKER_ENV: self.broker_url}
        cmd = [sys.executable, "-m", "fairq.worker.child", self.config.to_json(), str(index)]
        process = subprocess.Popen(cmd, env=env)
        self.children[process.pid] = Child(index, process, time.monotonic(), quick_deaths)

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
            code = os.waitstatus_to_exitcode(status)
            child.process.returncode = code
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
            lived = time.monotonic() - child.started
            quick = child.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (quick - 1)) if quick else 0.0
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.warning("fairq worker: process %d (pid %d) died with %s; restarting%s", child.index + 1, pid, how,
                        f" in {delay:.1f} s" if delay else "")
            if delay:
                time.sleep(delay)
            if not self.signals:
                self.restarts += 1
                self._spawn(child.index, quick)
        return exit_code
