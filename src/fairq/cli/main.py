"""``fairq``: the command group."""

from __future__ import annotations

import logging

import click

from .. import __version__
from ..logs import configure_logging
from .demo import demo
from .dlq import dlq
from .send import send
from .status import status
from .worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fairq")
def cli() -> None:
    """fairq: a fair work queue on RabbitMQ."""
    # Commands report their outcome in one line; only `fairq worker` logs as it goes.
    configure_logging(logging.ERROR)


cli.add_command(worker)
cli.add_command(send)
cli.add_command(status)
cli.add_command(demo)
cli.add_command(dlq)


def main() -> None:
    cli(prog_name="fairq")
