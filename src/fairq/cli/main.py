"""``fairq``: the command group."""

from __future__ import annotations

import logging
import os

import click

from .. import __version__
from .demo import demo
from .send import send
from .status import status
from .worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fairq")
def cli() -> None:
    """fairq: a fair work queue on RabbitMQ."""
    if not os.environ.get("FAIRQ_DEBUG"):
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)


cli.add_command(worker)
cli.add_command(send)
cli.add_command(status)
cli.add_command(demo)


def main() -> None:
    cli(prog_name="fairq")
