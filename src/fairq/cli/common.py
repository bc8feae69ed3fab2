"""What every command shares: the broker option and turning errors into one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import BROKER_ENV, DEFAULT_BROKER_URL, broker_url, redact
from ..errors import FairqError

F = TypeVar("F", bound=Callable[..., Any])


def broker_option(fn: F) -> F:
    """``-b/--broker URL``, defaulting to ``$FAIRQ_BROKER_URL`` (the default URL's password is guest's)."""
    return click.option(
        "-b", "--broker", "broker", metavar="URL", default=None,
        help=f"broker URL (env {BROKER_ENV}, default {redact(DEFAULT_BROKER_URL)})",
    )(fn)


def resolve_broker(explicit: str | None) -> str:
    return broker_url(explicit)


def one_line_errors(fn: F) -> F:
    """Report fairq errors as one redacted line on stderr and exit 1; never a traceback.

    Set FAIRQ_DEBUG=1 to see the traceback of an unexpected error.
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
            fail("interrupted")
        except Exception as exc:
            if os.environ.get("FAIRQ_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> None:
    click.echo(f"fairq: error: {redact(message)}", err=True)
    sys.exit(code)
