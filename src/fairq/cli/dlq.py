"""``fairq dlq list|show|replay|purge QUEUE``: what failed and why, put it back, or drop it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

import click
from rich.console import Console

from .. import deadletters
from ..broker.topology import dead_letter_queue
from .common import broker_option, fail, one_line_errors, resolve_broker
from .dlq_view import plain_lines, plural, render_table, whole


@click.group()
def dlq() -> None:
    """Inspect, replay or purge the dead letters of a queue (QUEUE.dlq)."""


@dlq.command("list")
@click.argument("queue")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list (every field, as dlq show) instead of a table")
@broker_option
@one_line_errors
def list_(queue: str, as_json: bool, broker: str | None) -> None:
    """Show every dead letter of QUEUE and why it died; they all stay where they are.

    On a terminal: a table (message ids whole; narrow terminals drop the columns that
    matter least). Through a pipe: one dead letter a line, tab-separated: message id,
    task, reason, error, attempts, worker, dead at, bytes.
    """
    letters = asyncio.run(deadletters.list_dead_letters(resolve_broker(broker), queue))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(d) for d in letters], indent=2, ensure_ascii=False))
        return
    console = Console()
    if not letters:  # through a pipe, on stderr: stdout holds dead letters only
        click.echo(f"no dead letters in {dead_letter_queue(queue)}", err=not console.is_terminal)
        return
    table = render_table(queue, letters, console.width) if console.is_terminal else None
    if table is None:  # a pipe, or a terminal too narrow for a table with whole ids
        click.echo("\n".join(plain_lines(letters)))
    else:
        console.print(table)


@dlq.command()
@click.argument("queue")
@click.option("--id", "message_id", default=None, metavar="MESSAGE_ID", help="show this one (default: the oldest)")
@click.option("--json", "as_json", is_flag=True, help="print it as a JSON object")
@broker_option
@one_line_errors
def show(queue: str, message_id: str | None, as_json: bool, broker: str | None) -> None:
    """Print one dead letter whole: task, arguments, reason, error, traceback, attempts, worker, times."""
    letter = asyncio.run(deadletters.find(resolve_broker(broker), queue, message_id))
    if letter is None:
        which = f"with id {message_id} " if message_id is not None else ""
        fail(f"no dead letter {which}in {dead_letter_queue(queue)}")
    click.echo(json.dumps(dataclasses.asdict(letter), indent=2, ensure_ascii=False) if as_json else whole(letter))


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
    click.echo(f"replayed {plural(moved, 'dead letter')} to {queue}")


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
        click.confirm(f"delete {plural(ready, 'dead letter')} from {dead_letter_queue(queue)} for good?", abort=True)
    purged = asyncio.run(deadletters.purge(url, queue))
    click.echo(f"purged {plural(purged, 'dead letter')} from {dead_letter_queue(queue)}")
