"""``fairq status``: per queue, ready / consumers / dead-lettered (and unacked with the management API)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table

from ..config import redact
from ..observe.counts import DEFAULT_MANAGEMENT_URL, QUEUES_ENV, QueueRow, collect, discoverable_queues
from ..worker.loader import load_app
from .common import broker_option, one_line_errors, resolve_broker


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _scheme(broker_url: str) -> str:
    scheme = urlsplit(broker_url).scheme
    return "amqp" if scheme == "amqps" else scheme


def title(rows: list[QueueRow], with_management: bool, broker_url: str) -> str:
    """The table's title: what the backend could not tell (nothing when it told everything)."""
    if with_management or any(row.unacked is not None for row in rows):
        return "fairq queues"
    if _scheme(broker_url) == "amqp":
        return "fairq queues (no unacked counts: the management API did not answer)"
    return f"fairq queues (no unacked counts from {_scheme(broker_url)}://)"


def render(rows: list[QueueRow], with_management: bool, broker_url: str = "amqp://") -> Table:
    table = Table(title=title(rows, with_management, broker_url))
    with_unacked = with_management or any(row.unacked is not None for row in rows)
    with_kind = with_management or any(row.kind for row in rows)
    table.add_column("queue")
    if with_kind:
        table.add_column("type")
    table.add_column("ready", justify="right")
    if with_unacked:
        table.add_column("unacked", justify="right")
    table.add_column("consumers", justify="right")
    table.add_column("dead-lettered", justify="right")
    for row in rows:
        name = row.name if row.exists else f"{row.name} (missing)"
        cells = [name] + ([row.kind or "-"] if with_kind else []) + [_cell(row.ready)]
        cells += ([_cell(row.unacked)] if with_unacked else []) + [_cell(row.consumers), _cell(row.dead_lettered)]
        table.add_row(*cells)
    return table


def unnamed_hint(rows: list[QueueRow], with_management: bool, management_url: str,
                 broker_url: str = "amqp://") -> str:
    """The line under an unnamed ``status``: what it could see, what it could not, and how to narrow it."""
    if with_management:
        return "every queue the broker lists; narrow it with MODULE (its tasks' queues) or -Q NAME"
    looked = discoverable_queues()
    missing = [name for name in looked if name not in {row.name for row in rows}]
    which = (f"only {looked[0]} was looked up (set ${QUEUES_ENV} to look up more)" if len(looked) == 1 else
             f"only {', '.join(looked)} were looked up (default and ${QUEUES_ENV})")
    absent = f"; missing: {', '.join(missing)}" if missing else ""
    why = (f"the management API ({redact(management_url)}) did not answer and AMQP cannot list queues"
           if _scheme(broker_url) == "amqp" else "queues are looked up by name")
    return f"{why}: {which}{absent}; name queues with MODULE or -Q NAME"


@click.command()
@click.argument("module", required=False)
@click.option("-Q", "--queue", "queues", multiple=True, metavar="NAME", help="queue to show (repeatable)")
@click.option("--management-url", default=DEFAULT_MANAGEMENT_URL, show_default=True,
              help="RabbitMQ management API, used when it answers")
@broker_option
@one_line_errors
def status(module: str | None, queues: tuple[str, ...], management_url: str, broker: str | None) -> None:
    """Per queue: ready, consumers, dead-lettered; unacked and all queues when the management API answers.

    With no MODULE and no -Q: every queue the management API lists; without it, the
    queues AMQP can look up by name: default and those in $FAIRQ_QUEUES (comma-separated).
    """
    names = list(queues)
    if module:
        names += [q for q in load_app(module).queues() if q not in names]
    url = resolve_broker(broker)
    counts = collect(url, names, management_url)
    rows, with_management = list(counts.rows), counts.listed
    console = Console()
    if rows:
        console.print(render(rows, with_management, url))
    else:
        click.echo("no fairq queues found")
    if not names:
        click.echo(unnamed_hint(rows, with_management, management_url, url))
