"""Reading the per-run event file the tasks append to (see ``benchmarks/systems/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Event:
    """One finished task: its index, when it was sent, started and ended (time.time()), and the process."""

    i: int
    sent: float
    start: float
    end: float
    pid: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


class EventFile:
    """A growing event file; :meth:`count` reads only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        complete = chunk.rfind(b"\n") + 1
        self._lines += chunk.count(b"\n", 0, complete)
        self._offset += complete
        return self._lines

    def read(self) -> list[Event]:
        """Every event; the warm-up task (index -1) is left out."""
        events = []
        for line in self.path.read_text().splitlines():
            i, sent, start, end, pid = line.split()
            if int(i) >= 0:
                events.append(Event(int(i), float(sent), float(start), float(end), int(pid)))
        return events
