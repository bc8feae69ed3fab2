"""The systems under test and how each is deployed: worker commands, sender module, consumer count.

fairq runs its own CLI (``fairq worker``); Celery runs ``celery worker`` with the
prefork pool; Dramatiq runs its ``dramatiq`` CLI with one thread per process;
the raw clients run ``systems/raw_consumer.py`` once per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class System:
    """One row's system, in one deployment shape."""

    family: str  #: "fairq", "celery", "dramatiq" or "raw"
    name: str  #: what runs, e.g. "Celery default"
    shape: str = ""  #: how it is deployed, e.g. "1 node × -c 2"
    mode: str = "default"  #: $BENCH_MODE for the task module (Celery "fair"/"confirm", fairq "classic", ...)
    policy: str = ""  #: fairq --prefetch; raw: "aiormq" or "pika"
    prefetch: int = 0  #: raw consumers only
    queue_kind: str = "classic"
    one_node: bool = True  #: Celery: one node with N pool processes (else N nodes with one each)
    confirms: str = ""  #: how the sender waits for the broker
    backend: str = "amqp"  #: fairq only: "amqp" (the shared RabbitMQ) or "sqlite" (a file of the run's own)
    events: bool = True  #: fairq only: False runs the worker with --no-events (the events' cost, issue 14)

    @property
    def label(self) -> str:
        return f"{self.name}, {self.shape}" if self.shape else self.name

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")[:40]

    @property
    def sender(self) -> str:
        return {"fairq": "fairq_tasks", "celery": "celery_app", "dramatiq": "dramatiq_tasks", "raw": "raw_tasks"}[self.family]

    def expected_consumers(self, processes: int) -> int:
        """Consumers on the run's queue once every worker is ready."""
        return 1 if self.family == "celery" and self.one_node else processes

    def worker_commands(self, processes: int, bin_dir: Path, systems_dir: Path, run_id: str) -> list[list[str]]:
        """The commands that start this system's workers: ``processes`` single-slot processes in all."""
        n = str(processes)
        if self.family == "fairq":
            return [[str(bin_dir / "fairq"), "worker", str(systems_dir / "fairq_tasks.py"), "-p", n, "-t", "1",
                     "--prefetch", self.policy, *([] if self.events else ["--no-events"])]]
        if self.family == "celery":
            nodes, per_node = (1, processes) if self.one_node else (processes, 1)
            return [[str(bin_dir / "celery"), "-A", "celery_app", "worker", "-P", "prefork", "-c", str(per_node),
                     "-n", f"bench{k}-{run_id}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "-l", "WARNING"] for k in range(nodes)]
        if self.family == "dramatiq":
            return [[str(bin_dir / "dramatiq"), "dramatiq_tasks", "--processes", n, "--threads", "1"]]
        return [[str(bin_dir / "python"), str(systems_dir / "raw_consumer.py"), self.policy, str(self.prefetch)]
                for _ in range(processes)]


def fairq(policy: str, kind: str = "quorum", backend: str = "amqp", events: bool = True) -> System:
    if not events:
        return System("fairq", f"fairq --prefetch {policy}, --no-events", mode=kind, policy=policy, queue_kind=kind,
                      confirms="yes, pipelined (send_many, window 1000)", events=False)
    if backend == "sqlite":
        return System("fairq", f"fairq --prefetch {policy}, SQLite broker", policy=policy, queue_kind="sqlite",
                      confirms="yes (send_many: one transaction per batch)", backend="sqlite")
    suffix = ", classic queue" if kind == "classic" else ""
    return System("fairq", f"fairq --prefetch {policy}{suffix}", mode=kind, policy=policy, queue_kind=kind,
                  confirms="yes, pipelined (send_many, window 1000)")


def fairq_sender() -> System:
    """fairq as a producer only: the policy does not matter."""
    return System("fairq", "fairq App.send_many", mode="quorum", policy="fair", queue_kind="quorum",
                  confirms="yes, pipelined (window 1000)")


def celery(mode: str = "default", processes: int = 2, one_node: bool = True) -> System:
    if processes == 1:
        shape = "-c 1"
    else:
        shape = f"1 node × -c {processes}" if one_node else f"{processes} nodes × -c 1"
    name = {"default": "Celery default", "fair": "Celery fair (acks_late, multiplier 1)",
            "confirm": "Celery confirm_publish"}[mode]
    confirms = "yes, one at a time (confirm_publish)" if mode == "confirm" else "no"
    return System("celery", name, shape, mode=mode, one_node=one_node, confirms=confirms)


def dramatiq(mode: str = "default", processes: int = 2) -> System:
    name = "Dramatiq confirm_delivery" if mode == "confirm" else "Dramatiq"
    confirms = "yes, one at a time (confirm_delivery)" if mode == "confirm" else "no"
    return System("dramatiq", name, f"-p {processes} -t 1", mode=mode, confirms=confirms)


def raw(client: str, prefetch: int, kind: str) -> System:
    what = "pika BlockingConnection" if client == "pika" else "raw aiormq"
    return System("raw", f"{what}, prefetch {prefetch}", policy=client, prefetch=prefetch, queue_kind=kind,
                  confirms="yes, pipelined (window 1000)")


def raw_publisher(kind: str) -> System:
    return System("raw", "raw aiormq publish", policy="aiormq", queue_kind=kind, confirms="yes, pipelined (window 1000)")


#: How each system is deployed, for the report.
DEPLOYMENT = [
    "fairq: `fairq worker systems/fairq_tasks.py -p N -t 1 --prefetch POLICY` (N processes × 1 slot, each its own "
    "consumer); quorum queues (fairq's default) unless a row says classic; sends with `App.send_many` / "
    "`Task.send`, always confirmed.",
    "Celery: `celery -A celery_app worker -P prefork -c N` (one node, N pool processes: one consumer with "
    "prefetch 4 × N by default) or N nodes `-c 1` (N consumers with prefetch 4 each) where a row says so; py-amqp "
    "transport, classic queues, JSON, early acks; `--without-gossip --without-mingle --without-heartbeat` (cluster "
    "chatter only: the broker is shared). Fair: `task_acks_late=True`, `worker_prefetch_multiplier=1`. Sends "
    "with `apply_async`, unconfirmed unless `confirm_publish`.",
    "Dramatiq: `dramatiq dramatiq_tasks --processes N --threads 1` (each process one consumer with prefetch "
    "2 × threads = 2, acks after the task); default middleware; classic queues; sends with `actor.send`, "
    "unconfirmed unless `confirm_delivery=True`.",
    "Raw clients: `systems/raw_consumer.py` once per process: consume, write the event line, ack (aiormq "
    "`basic_ack(wait=False)`, pika BlockingConnection `basic_ack`); sends with aiormq, confirmed, window 1000.",
]
