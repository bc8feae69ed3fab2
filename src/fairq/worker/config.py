"""What a ``fairq worker`` runs: resolved once in the supervisor, handed to each child as JSON."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field

from ..events.emitter import DEFAULT_HEARTBEAT
from ..logs import DEFAULT_LOG_LEVEL
from .policy import DEFAULT_POLICY

#: Environment variable naming the pipe a child writes one byte to once it consumes.
READY_FD_ENV = "FAIRQ_READY_FD"
#: Exit codes a child reports to its supervisor.
EXIT_OK = 0
EXIT_CONFIG = 2  # cannot start: bad module, wrong password; restarting will not help
EXIT_BROKER_LOST = 3
EXIT_RECYCLE = 4  # a sync task overran its time limit; its thread cannot be stopped: replace me


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs except the broker URL (passed in the environment, never argv)."""

    module: str | None
    queues: list[str] = field(default_factory=list)
    processes: int = 1
    threads: int = 1
    prefetch: str = DEFAULT_POLICY
    raw_handler: str | None = None
    name: str | None = None
    grace_seconds: float = 30.0
    log_level: str = DEFAULT_LOG_LEVEL  #: one of fairq.logs.LOG_LEVELS, resolved from --log-level / env
    events: bool = True  #: emit events (docs/events.md); off with --no-events or App(events=False)
    heartbeat: float = DEFAULT_HEARTBEAT  #: seconds between each process's heartbeat events
    metrics: bool = False  #: record Prometheus metrics (--metrics-port; the directory is in the environment)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))

    def process_name(self, index: int, pid: int) -> str:
        """``--name`` (numbered when there are several processes), else ``HOST.PID``."""
        if self.name:
            return self.name if self.processes == 1 else f"{self.name}.{index + 1}"
        return f"{socket.gethostname()}.{pid}"

    def node_name(self, supervisor_pid: int) -> str:
        """The ``fairq worker`` as a whole, as its events name it: ``--name``, else ``HOST.PID`` of the supervisor."""
        return self.name or f"{socket.gethostname()}.{supervisor_pid}"
