"""``fairq dashboard``: the live web page of the workers, queues and dead letters (needs ``fairq[dashboard]``)."""

from __future__ import annotations

import click

from ..config import redact
from .common import broker_option, one_line_errors, resolve_broker

PASSWORD_ENV = "FAIRQ_DASHBOARD_PASSWORD"


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8400, show_default=True, help="port to serve on")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to serve on; any but this machine's loopback needs --password")
@click.option("--password", envvar=PASSWORD_ENV, default=None, metavar="TEXT",
              help=f"ask browsers for this password (HTTP basic; any user name) (env {PASSWORD_ENV}, "
                   "which keeps it out of the process list)")
@click.option("--window", type=click.FloatRange(min=10), default=300.0, show_default=True,
              help="seconds of timeline kept for pages that connect")
@broker_option
@one_line_errors
def dashboard(port: int, host: str, password: str | None, window: float, broker: str | None) -> None:
    """Serve the live dashboard: per-slot timeline, queues, workers, dead letters (replay, purge).

    It binds 127.0.0.1 by default: only this machine can open it. Ctrl-C stops.
    """
    from ..dashboard import require

    require()
    from ..dashboard.server import DashboardServer

    url = resolve_broker(broker)
    server = DashboardServer(url, host=host, port=port, password=password, window=window)
    click.echo(f"fairq dashboard: {server.url} (broker {redact(url)}; Ctrl-C stops)", err=True)
    server.run()
