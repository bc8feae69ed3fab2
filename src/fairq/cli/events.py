"""``fairq events``: print the workers' events as they happen, one line each (or JSON lines)."""

from __future__ import annotations

import asyncio
import json
import time

import click

from ..broker import open_backend
from ..config import redact
from ..events import Event, EventStream, TaskEvent, WorkerEvent, WorkerHeartbeat, as_json, listen
from .common import broker_option, one_line_errors, resolve_broker


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def line(event: Event) -> str:
    """One event as a line of text: time, routing key, worker/process, then what matters for its kind."""
    head = f"{_clock(event.at)} {event.key:<18} {event.worker}/{event.process}"
    if isinstance(event, TaskEvent):
        parts = [head, event.task, event.message_id, f"queue {event.queue}", f"attempt {event.attempt}"]
        if event.slot is not None:
            parts.append(f"slot {event.slot}")
        if event.kind == "started":
            parts.append(f"waited {_seconds(event.wait)}")
        if event.run is not None:
            parts.append(f"ran {_seconds(event.run)}")
        if event.error:
            parts.append(event.error)
        if event.delay is not None:
            parts.append(f"next in {_seconds(event.delay)}")
        if event.reason:
            parts.append(event.reason)
        if event.how:
            parts.append(event.how)
        return "  ".join(parts)
    return "  ".join([head, *_worker_parts(event)])


def _worker_parts(event: WorkerEvent) -> list[str]:
    if event.kind == "online":
        return [f"{event.host} pid {event.pid}", f"{event.slots} slot(s), prefetch {event.policy}",
                f"queues {', '.join(event.queues) or '-'}", f"fairq {event.version}"]
    if isinstance(event, WorkerHeartbeat):
        counters = event.counters
        running = ", ".join(f"{r.task} {r.elapsed(event.at):.1f}s" for r in event.running) or "idle"
        state = "" if event.state == "running" and event.connected else (
            f"{event.state}{'' if event.connected else ', reconnecting'}: ")
        parts = [f"{state}running {len(event.running)}/{event.slots}: {running}",
                 f"held-not-started {event.held_not_started}", f"window {event.window}{' parked' if event.parked else ''}",
                 f"done {counters.succeeded} failed {counters.failed} retried {counters.retried} "
                 f"dead {counters.dead_lettered}"]
        if event.dropped:
            parts.append(f"{event.dropped} event(s) dropped")
        return parts
    return [f"{event.host} pid {event.pid}"]


async def _print(stream: EventStream, as_lines: bool, count: int | None) -> None:
    seen = 0
    problem: str | None = None
    connected = True
    while count is None or seen < count:
        event = await stream.get(timeout=0.5)
        if stream.problem != problem or stream.connected != connected:
            problem, connected = stream.problem, stream.connected
            if problem:
                click.echo(f"fairq events: {problem}", err=True)
            elif connected:
                click.echo("fairq events: connected again", err=True)
        if event is None:
            continue
        seen += 1
        click.echo(json.dumps(as_json(event)) if as_lines else line(event))


@click.command()
@click.option("--json", "as_json_lines", is_flag=True, help="one JSON object per line instead of text")
@click.option("-k", "--key", "keys", multiple=True, metavar="PATTERN",
              help="only events whose routing key matches (repeatable; task.#, worker.heartbeat, task.failed …)")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None, help="exit after this many events")
@broker_option
@one_line_errors
def events(as_json_lines: bool, keys: tuple[str, ...], count: int | None, broker: str | None) -> None:
    """Print the workers' events as they happen: each task's story and the workers' heartbeats.

    Events are best-effort (docs/events.md): this shows what happens from now on, and a worker
    started with --no-events sends none. Ctrl-C stops.
    """
    url = resolve_broker(broker)

    patterns = list(keys) or ["#"]

    async def main() -> None:
        async with listen(open_backend(url), patterns) as stream:
            click.echo(f"fairq events: listening on {redact(url)} for {', '.join(patterns)} (Ctrl-C stops)", err=True)
            await _print(stream, as_json_lines, count)

    asyncio.run(main())
