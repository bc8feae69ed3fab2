"""Worker processes: start them in their own process groups, watch them, stop them, read their memory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class WorkerExited(RuntimeError):
    """A worker process ended on its own; ``tail`` is the end of its log."""

    def __init__(self, command: list[str], code: int, tail: str) -> None:
        super().__init__(f"{' '.join(command[:4])} ... exited with {code}: {tail}")
        self.code = code
        self.tail = tail


@dataclass
class Workers:
    """The worker processes of one run; each command is started as its own process-group leader."""

    commands: list[list[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            for command in self.commands:
                self.processes.append(subprocess.Popen(command, env=self.env, cwd=self.cwd, stdout=out,
                                                       stderr=subprocess.STDOUT, start_new_session=True))

    def check(self) -> None:
        """Raise :class:`WorkerExited` if any worker process has ended."""
        for process in self.processes:
            code = process.poll()
            if code is not None:
                raise WorkerExited([str(a) for a in process.args], code, self.tail())  # type: ignore[union-attr]

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM each started process, wait, then SIGKILL whatever is left of its process group."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the group this process leads: its pool children
            except ProcessLookupError:
                pass
            process.wait()

    def children(self) -> list[int]:
        """PIDs of the direct children of every started process (``pgrep -P``)."""
        pids: list[int] = []
        for process in self.processes:
            out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout
            pids += [int(p) for p in out.split()]
        return sorted(pids)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
