"""``fairq worker``: run worker processes for a module's tasks or for plain messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

import click

from ..broker import connect_url
from ..errors import ConfigurationError, ConnectionFailed, LoginRefused
from ..events.emitter import DEFAULT_HEARTBEAT
from ..metrics.endpoint import DEFAULT_HOST, METRICS_HOST_ENV, METRICS_PORT_ENV, MetricsEndpoint
from ..logs import LOG_LEVEL_ENV, LOG_LEVELS, configure_logging, resolve_log_level
from ..worker.banner import show_banner
from ..worker.config import WorkerConfig
from ..worker.loader import load_app, load_callable
from ..worker.policy import DEFAULT_POLICY, Prefetch
from ..worker.supervisor import EXIT_ABORTED, Supervisor
from .common import broker_option, fail, one_line_errors, resolve_broker


@click.command()
@click.argument("module", required=False)
@click.option("-Q", "--queue", "queues", multiple=True, metavar="NAME",
              help="queue to consume (repeatable); default: the queues of MODULE's tasks")
@click.option("-p", "--processes", type=click.IntRange(min=1), default=None,
              help="worker processes (default: number of CPUs)")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="concurrent task slots per process")
@click.option("--prefetch", default=DEFAULT_POLICY, show_default=True, metavar="POLICY",
              help="fair | adaptive | unlimited | N: how many unacked tasks a process may hold")
@click.option("--raw-handler", metavar="MOD:FUNC", help="consume plain messages on the -Q queues: FUNC(body: bytes)")
@click.option("--name", help="worker name in logs and status (default HOST.PID)")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
              help=f"log verbosity; info logs each task's start and end (default ${LOG_LEVEL_ENV}, else warning)")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="seconds running tasks get to finish after SIGTERM")
@click.option("--events/--no-events", default=True, show_default=True,
              help="emit task and worker events for `fairq events`, status and the dashboard (docs/events.md)")
@click.option("--heartbeat", type=click.FloatRange(min=0.1), default=DEFAULT_HEARTBEAT, show_default=True,
              metavar="SECONDS", help="seconds between each process's heartbeat events")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT", envvar=METRICS_PORT_ENV,
              help=f"serve Prometheus metrics of all the processes on http://HOST:PORT/metrics; 0 picks a free port "
                   f"(default ${METRICS_PORT_ENV}, else off; docs/metrics.md)")
@click.option("--metrics-host", default=DEFAULT_HOST, show_default=True, metavar="HOST", envvar=METRICS_HOST_ENV,
              help=f"address the metrics endpoint listens on (${METRICS_HOST_ENV})")
@broker_option
@one_line_errors
def worker(module: str | None, queues: tuple[str, ...], processes: int | None, threads: int, prefetch: str,
           raw_handler: str | None, name: str | None, log_level: str | None, grace: float, events: bool,
           heartbeat: float, metrics_port: int | None, metrics_host: str, broker: str | None) -> None:
    """Run worker processes for the tasks defined in MODULE (dotted path or file.py)."""
    level = resolve_log_level(log_level)
    configure_logging(level, banner=True)
    try:
        Prefetch.parse(prefetch)  # refuse a bad policy before starting anything
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if module is None and raw_handler is None:
        raise click.UsageError("give a MODULE, or --raw-handler with -Q")
    if raw_handler is not None:
        load_callable(raw_handler)
        if not queues:
            raise click.UsageError("--raw-handler needs the queues to consume (-Q)")
    url = resolve_broker(broker)
    app = None
    if module is not None:
        app = load_app(module)
        if not queues and not app.tasks:
            raise ConfigurationError(f"{module} defines no tasks, so there is no queue to consume; use -Q")
        url = resolve_broker(broker or app.explicit_broker_url)
    asyncio.run(check_broker(url))
    config = WorkerConfig(
        module=module,
        queues=list(queues),
        processes=processes or os.cpu_count() or 1,
        threads=threads,
        prefetch=prefetch,
        raw_handler=raw_handler,
        name=name,
        grace_seconds=grace,
        log_level=level,
        events=events and (app.events if app is not None else True),
        heartbeat=heartbeat,
        metrics=metrics_port is not None,
    )
    with contextlib.ExitStack() as stack:
        metrics = None
        if metrics_port is not None:
            metrics = stack.enter_context(MetricsEndpoint(metrics_port, metrics_host))
        show_banner(config, url, config.queues or (app.queues() if app else []), app.tasks if app else [],
                    metrics.url if metrics is not None else None)
        code = Supervisor(config, url, metrics).run()
    if code == EXIT_ABORTED:
        sys.exit(code)  # the supervisor logged the abort; unfinished tasks go back to the queue
    if code:
        fail("a worker process could not start", code)


async def check_broker(url: str) -> None:
    """Connect once before starting processes, so a wrong password is one clear error.

    A broker that is merely down is not an error: the workers wait for it.
    """
    broker = connect_url(url)
    try:
        await broker.connect()
    except LoginRefused:
        raise
    except ConnectionFailed as exc:
        logging.getLogger("fairq.worker").warning("%s; the workers keep trying", exc)
        return
    await broker.close()
