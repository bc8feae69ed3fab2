"""``fairq status``: per queue, ready / consumers / dead-lettered (and unacked with the management API)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..stats import DEFAULT_MANAGEMENT_URL, QueueRow, collect
from ..worker.loader import load_app
from .common import broker_option, one_line_errors, resolve_broker


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render(rows: list[QueueRow], with_management: bool) -> Table:
    table = Table(title="fairq queues" + ("" if with_management else " (AMQP only: no unacked counts)"))
    table.add_column("queue")
    if with_management:
        table.add_column("type")
    table.add_column("ready", justify="right")
    if with_management:
        table.add_column("unacked", justify="right")
    table.add_column("consumers", justify="right")
    table.add_column("dead-lettered", justify="right")
    for row in rows:
        name = row.name if row.exists else f"{row.name} (missing)"
        cells = [name] + ([row.kind or "-"] if with_management else []) + [_cell(row.ready)]
        cells += ([_cell(row.unacked)] if with_management else []) + [_cell(row.consumers), _cell(row.dead_lettered)]
        table.add_row(*cells)
    return table


@click.command()
@click.argument("module", required=False)
@click.option("-Q", "--queue", "queues", multiple=True, metavar="NAME", help="queue to show (repeatable)")
@click.option("--management-url", default=DEFAULT_MANAGEMENT_URL, show_default=True,
              help="RabbitMQ management API, used when it answers")
@broker_option
@one_line_errors
def status(module: str | None, queues: tuple[str, ...], management_url: str, broker: str | None) -> None:
    """Per queue: ready, consumers, dead-lettered; unacked and all queues when the management API answers."""
    names = list(queues)
    if module:
        names += [q for q in load_app(module).queues() if q not in names]
    rows, with_management = collect(resolve_broker(broker), names, management_url)
    Console().print(render(rows, with_management))
