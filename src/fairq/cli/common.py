"""What every command shares: the broker and TLS options, and turning errors into one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import click

from ..config import BROKER_ENV, DEFAULT_BROKER_URL, broker_url, redact
from ..errors import ConfigurationError, FairqError

F = TypeVar("F", bound=Callable[..., Any])

#: --tls-* option → the amqps:// query parameter the AMQP client reads it from.
TLS_OPTIONS = {"tls_ca": "cafile", "tls_cert": "certfile", "tls_key": "keyfile"}
_TLS_HELP = {
    "tls_ca": "CA certificate (PEM) to verify the broker's certificate with, instead of the system's",
    "tls_cert": "client certificate (PEM), for brokers that require one",
    "tls_key": "private key of --tls-cert (PEM), unless that file holds it",
}
_TLS_META = "fairq.tls"


def broker_option(fn: F) -> F:
    """``-b/--broker URL`` (default ``$FAIRQ_BROKER_URL``) and ``--tls-ca/--tls-cert/--tls-key PATH``.

    The TLS options are not passed to the command: they wait in the click context
    until :func:`resolve_broker` folds them into the URL, so no command signature changes.
    """
    for name in reversed(TLS_OPTIONS):
        fn = click.option(
            f"--{name.replace('_', '-')}", name, metavar="PATH", expose_value=False, callback=_keep_tls,
            type=click.Path(exists=True, dir_okay=False, resolve_path=True), help=_TLS_HELP[name],
        )(fn)
    return click.option(
        "-b", "--broker", "broker", metavar="URL", multiple=True, callback=_join_brokers,
        help=f"broker URL: amqp:// or amqps:// (RabbitMQ; a cluster's nodes as host1,host2:5673 or a repeated -b), "
             f"sqlite:///PATH (embedded, one host) or memory:// (in-process) (env {BROKER_ENV}, "
             f"default {redact(DEFAULT_BROKER_URL)})",
    )(fn)


def _join_brokers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """A repeated ``-b``: one URL naming every node (the command gets a string, as with one ``-b``)."""
    if not value:
        return None
    from ..broker.rabbitmq.hosts import join

    try:
        return join(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _keep_tls(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name:
        ctx.meta.setdefault(_TLS_META, {})[param.name] = value


def resolve_broker(explicit: str | None) -> str:
    """The broker URL (argument, else environment, else default) with this command's --tls-* files in it."""
    ctx = click.get_current_context(silent=True)
    tls: dict[str, str] = ctx.meta.get(_TLS_META, {}) if ctx else {}
    return broker_url(with_tls_files(broker_url(explicit), **tls))


def with_tls_files(url: str, tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None) -> str:
    """``url`` with the files as the query parameters the AMQP client reads (``cafile``, ``certfile``, ``keyfile``).

    The URL carries them because it is the one thing every process gets: ``fairq worker``
    hands it to its children. Files given here replace those already in the URL.
    """
    files = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
    given = {TLS_OPTIONS[option]: path for option, path in files.items() if path}
    if not given:
        return url
    parts = urlsplit(url)
    if parts.scheme != "amqps":
        raise ConfigurationError(f"--tls-ca/--tls-cert/--tls-key need an amqps:// broker URL, got {redact(url)!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in given]
    query += given.items()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote, safe="/")))


#: The exit code of a command stopped by Ctrl-C (SIGINT), as shells report a process killed by it: 128 + 2.
EXIT_INTERRUPTED = 130


def one_line_errors(fn: F) -> F:
    """Report fairq errors as one redacted line on stderr and exit 1; never a traceback.

    Ctrl-C exits 130 with one line. Set FAIRQ_DEBUG=1 to see the traceback of an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except FairqError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            interrupted()
        except Exception as exc:
            if os.environ.get("FAIRQ_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"fairq: error: {redact(message)}", err=True)
    sys.exit(code)


def interrupted() -> NoReturn:
    """Ctrl-C: one line, exit 130. What was confirmed before it stays sent; nothing else is claimed."""
    try:
        click.echo("fairq: interrupted", err=True)
    except (OSError, KeyboardInterrupt):
        pass  # stderr gone, or a second Ctrl-C: the exit code still says what happened
    sys.exit(EXIT_INTERRUPTED)
