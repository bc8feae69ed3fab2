"""``fairq send``: enqueue a task by name, or a plain message as the article's task.py does."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..app import App
from ..config import redact
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


class TaskNotChecked(ConfigurationError):
    """TASK cannot be found as ``module.function``: its module does not import, or holds no such task."""


def find_task(name: str) -> Task[Any, Any]:
    """The Task object behind ``module.function``; :class:`TaskNotChecked` says why there is none.

    The task may be registered under another name (``@app.task(name=...)``): that name is
    the one workers know, so it is the one to send.

    Without it ``send`` cannot know the task's queue, nor check its arguments: guessing
    ``default`` would enqueue, to a queue no worker may read, a task that never runs.
    """
    module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise TaskNotChecked(f"{name!r} names no module (expected module.function)")
    try:
        module = import_module(module_name)
    except ConfigurationError as exc:
        raise TaskNotChecked(str(exc)) from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise TaskNotChecked(f"module {module_name!r} has no task {attr!r}")
    if not isinstance(obj, Task):
        raise TaskNotChecked(f"{name} is not a fairq task (no @app.task)")
    return obj


@click.command()
@click.argument("task", required=False)
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="keyword arguments as a JSON object")
@click.option("-Q", "--queue", help="target queue (default: the task's queue; needed when TASK cannot be imported)")
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
    unchecked: str | None = None
    try:
        found = find_task(task)
    except TaskNotChecked as exc:
        if not queue:
            raise TaskNotChecked(f"cannot send {task}: {exc}; to send it unchecked, name its queue with --queue")
        target = queue
        unchecked = f"fairq: warning: {task} was not checked ({exc}); sent to {target} as it is"
    else:
        try:
            found.check_arguments(values, kwargs)
        except TypeError as exc:
            raise EncodeError(f"cannot send {task}: {exc}") from None
        task, target = found.name, queue or found.queue
    if delay and count > 1:
        raise click.UsageError("--delay and --count do not go together")
    app = App(broker=url, send_timeout=timeout)
    try:
        if count == 1:
            click.echo(app.send(task, values, kwargs, queue=target, delay=delay, wait_if_full=wait_if_full))
        else:
            started = time.perf_counter()
            app.send_many(task, [Call(values, kwargs)] * count, queue=target, wait_if_full=wait_if_full)
            took = time.perf_counter() - started
            click.echo(f"sent {count} × {task} to {target} in {took:.2f} s ({count / took:,.0f}/s, all confirmed)")
    finally:
        app.close()
    if unchecked:
        click.echo(redact(unchecked), err=True)


def send_raw(app: App, queue: str, text: str, count: int) -> None:
    """Publish ``text`` as a plain persistent message to a classic durable queue, as task.py does."""
    try:
        app.send_plain(queue, text.encode(), count=count)
    finally:
        app.close()
    click.echo(f" [x] Sent {text!r}" + (f" × {count}" if count > 1 else ""))
