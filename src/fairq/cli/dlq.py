"""``fairq dlq list|replay|purge QUEUE``: what failed and why, put it back, or drop it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

import click
from rich.console import Console
from rich.table import Table

from .. import deadletters
from ..broker.topology import dead_letter_queue
from ..deadletters import DeadLetter
from .common import broker_option, fail, one_line_errors, resolve_broker


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render(queue: str, letters: list[DeadLetter]) -> Table:
    table = Table(title=f"{len(letters)} dead letters in {dead_letter_queue(queue)}")
    for name in ("message id", "task", "reason", "error", "attempts", "worker", "dead at"):
        table.add_column(name)
    table.add_column("bytes", justify="right")
    for d in letters:
        error = ": ".join(part for part in (d.error_type, d.error_message) if part) or None
        table.add_row(_cell(d.message_id), d.task, d.reason, _cell(error), _cell(d.attempts), _cell(d.worker),
                      _cell(d.dead_at), f"{d.size:,}")
    return table


@click.group()
def dlq() -> None:
    """Inspect, replay or purge the dead letters of a queue (QUEUE.dlq)."""


@dlq.command("list")
@click.argument("queue")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list instead of a table")
@broker_option
@one_line_errors
def list_(queue: str, as_json: bool, broker: str | None) -> None:
    """Show every dead letter of QUEUE and why it died; they all stay where they are."""
    letters = asyncio.run(deadletters.list_dead_letters(resolve_broker(broker), queue))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(d) for d in letters], indent=2))
    elif not letters:
        click.echo(f"no dead letters in {dead_letter_queue(queue)}")
    else:
        Console().print(render(queue, letters))


@dlq.command()
@click.argument("queue")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="replay at most N")
@click.option("--id", "message_id", default=None, metavar="MESSAGE_ID", help="replay only this message")
@broker_option
@one_line_errors
def replay(queue: str, limit: int | None, message_id: str | None, broker: str | None) -> None:
    """Move dead letters back to QUEUE with attempts reset and their death headers removed."""
    if limit is not None and message_id is not None:
        raise click.UsageError("--id replays one dead letter; --limit cannot go with it")
    moved = asyncio.run(deadletters.replay(resolve_broker(broker), queue, limit=limit, message_id=message_id))
    if message_id is not None and moved == 0:
        fail(f"no dead letter with id {message_id} in {dead_letter_queue(queue)}")
    Console().print(f"replayed {moved} dead letters to {queue}", highlight=False)


@dlq.command()
@click.argument("queue")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@broker_option
@one_line_errors
def purge(queue: str, yes: bool, broker: str | None) -> None:
    """Delete every dead letter of QUEUE for good."""
    url = resolve_broker(broker)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("purge deletes dead letters for good: pass --yes when stdin is not a terminal")
        ready = asyncio.run(deadletters.count(url, queue))
        click.confirm(f"delete {ready} dead letters from {dead_letter_queue(queue)} for good?", abort=True)
    purged = asyncio.run(deadletters.purge(url, queue))
    Console().print(f"purged {purged} dead letters from {dead_letter_queue(queue)}", highlight=False)
