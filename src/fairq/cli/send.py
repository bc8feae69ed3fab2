"""``fairq send``: enqueue a task by name, or a plain message as the article's task.py does."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..app import App
from ..config import DEFAULT_QUEUE
from ..errors import ConfigurationError, EncodeError
from ..task import Call, Task
from ..worker.loader import import_module
from .common import broker_option, one_line_errors, resolve_broker


def parse_arg(text: str) -> Any:
    """Each ARG is JSON if it parses as JSON, else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def find_task(name: str) -> Task[Any, Any] | None:
    """The Task object behind ``module.function`` if it can be imported, else None."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        return None
    try:
        module = import_module(module_name)
    except ConfigurationError:
        return None
    obj = getattr(module, attr, None)
    return obj if isinstance(obj, Task) else None


@click.command()
@click.argument("task", required=False)
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="keyword arguments as a JSON object")
@click.option("-Q", "--queue", help="target queue (default: the task's queue when TASK imports, else 'default')")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True,
              help="send N copies, with pipelined confirms")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="start no sooner than this (held by the broker)")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="SECONDS",
              help="how long to wait for a broker that is down or blocked (with --count: without any confirm)")
@click.option("--wait-if-full", is_flag=True, help="wait for room in a full queue instead of failing")
@click.option("--raw", is_flag=True, help="send a plain message like the article's task.py: the words joined by spaces")
@broker_option
@one_line_errors
def send(task: str | None, args: tuple[str, ...], kwargs_json: str | None, queue: str | None, count: int,
         delay: float, timeout: float, wait_if_full: bool, raw: bool, broker: str | None) -> None:
    """Enqueue TASK with ARGs (each parsed as JSON, else a string); prints the message id."""
    url = resolve_broker(broker)
    if raw:
        if not queue:
            raise click.UsageError("--raw needs -Q QUEUE")
        words = ([task] if task else []) + list(args)
        send_raw(App(broker=url, send_timeout=timeout), queue, " ".join(words) or "Hello World!", count)
        return
    if not task:
        raise click.UsageError("missing TASK")
    kwargs: Any = {}
    if kwargs_json is not None:
        try:
            kwargs = json.loads(kwargs_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--kwargs") from None
        if not isinstance(kwargs, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--kwargs")
    values = [parse_arg(a) for a in args]
    found = find_task(task)
    if found is not None:
        try:
            found.check_arguments(values, kwargs)
        except TypeError as exc:
            raise EncodeError(f"cannot send {task}: {exc}") from None
    target = queue or (found.queue if found else DEFAULT_QUEUE)
    app = App(broker=url, send_timeout=timeout)
    try:
        if count == 1:
            click.echo(app.send(task, values, kwargs, queue=target, delay=delay, wait_if_full=wait_if_full))
            return
        if delay:
            raise click.UsageError("--delay and --count do not go together")
        started = time.perf_counter()
        app.send_many(task, [Call(values, kwargs)] * count, queue=target, wait_if_full=wait_if_full)
        took = time.perf_counter() - started
        click.echo(f"sent {count} × {task} to {target} in {took:.2f} s ({count / took:,.0f}/s, all confirmed)")
    finally:
        app.close()


def send_raw(app: App, queue: str, text: str, count: int) -> None:
    """Publish ``text`` as a plain persistent message to a classic durable queue, as task.py does."""
    try:
        app.send_plain(queue, text.encode(), count=count)
    finally:
        app.close()
    click.echo(f" [x] Sent {text!r}" + (f" × {count}" if count > 1 else ""))
