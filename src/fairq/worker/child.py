"""Entry point of one worker process (``python -m fairq.worker.child CONFIG_JSON``).

Started by the supervisor. SIGINT is ignored here (a terminal's Ctrl+C reaches the
whole process group; the supervisor turns it into one SIGTERM per child).
First SIGTERM: graceful stop. Second: abort.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from ..broker import QueueKind, QueueSpec, kind_option, open_backend
from ..config import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_MESSAGE_BYTES, broker_url
from ..errors import BrokerError, FairqError, LoginRefused
from ..events import EventOptions
from ..logs import configure_logging
from .config import EXIT_BROKER_LOST, EXIT_CONFIG, EXIT_OK, EXIT_RECYCLE, READY_FD_ENV, WorkerConfig
from .worker import State, Worker
from .loader import load_app, load_callable
from .policy import Prefetch

if TYPE_CHECKING:
    from ..metrics.recorder import Recorder



def build_worker(config: WorkerConfig, index: int) -> Worker:
    """Import the user's module and raw handler and make the :class:`Worker` for this process."""
    app = load_app(config.module) if config.module else None
    raw = load_callable(config.raw_handler) if config.raw_handler else None
    queue_names = config.queues or (app.queues() if app else [])
    if raw is not None:
        # Plain-message queues are classic and argument-free, as the article declares them.
        specs = [QueueSpec(q, options=kind_option(QueueKind.PLAIN)) for q in queue_names]
    else:
        assert app is not None
        specs = [app.queue_spec(q) for q in queue_names]
    return Worker(
        backend=open_backend(broker_url()),  # the supervisor resolved -b / App(broker=) / env into the env
        queues=specs,
        tasks=app.tasks if app else {},
        name=config.process_name(index, os.getpid()),
        threads=config.threads,
        prefetch=Prefetch.parse(config.prefetch),
        raw_handler=raw,
        max_message_bytes=app.max_message_bytes if app else DEFAULT_MAX_MESSAGE_BYTES,
        delivery_limit=app.delivery_limit if app else DEFAULT_DELIVERY_LIMIT,
        grace_seconds=config.grace_seconds,
        # Each process emits its own events, numbered as its name is (1 … processes).
        events=EventOptions(process=index + 1, processes=config.processes, node=config.node_name(os.getppid()),
                            heartbeat=config.heartbeat) if config.events else False,
    )


async def serve(worker: Worker, metrics: Recorder | None = None) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    told = asyncio.ensure_future(tell_supervisor_when_ready(worker))
    if metrics is not None:
        metrics.start()
    try:
        await worker.run()
    finally:
        told.cancel()
        if metrics is not None:
            await metrics.close()


def record_metrics(worker: Worker, index: int) -> Recorder:
    """Prometheus metrics for this process, in the supervisor's directory (its ``$PROMETHEUS_MULTIPROC_DIR``)."""
    from ..metrics.definitions import MetricSet
    from ..metrics.recorder import Recorder

    return Recorder(worker, MetricSet.create(registry=None), process=index + 1)


async def tell_supervisor_when_ready(worker: Worker) -> None:
    """One byte on the supervisor's pipe once consuming: this process is not a failed start."""
    fd = os.environ.get(READY_FD_ENV)
    if not fd:
        return
    await worker.ready.wait()
    try:
        os.write(int(fd), b"r")
        os.close(int(fd))
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = WorkerConfig.from_json(args[0])
    index = int(args[1]) if len(args) > 1 else 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(config.log_level, banner=True)
    try:
        worker = build_worker(config, index)
    except FairqError as exc:
        print(f"fairq worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    recorder = record_metrics(worker, index) if config.metrics else None
    try:
        asyncio.run(serve(worker, recorder))
    except LoginRefused as exc:
        logging.getLogger("fairq.worker").error("%s", exc)
        return EXIT_CONFIG
    except BrokerError as exc:
        logging.getLogger("fairq.worker").error("%s", exc)
        return EXIT_BROKER_LOST
    if worker.state is State.ABORTING or worker.recycle:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_RECYCLE if worker.recycle else EXIT_OK)  # do not wait for threads that cannot be stopped
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
