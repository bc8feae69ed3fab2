"""``fairq``: the command group."""

from __future__ import annotations

import logging
import os
import sys

import click

from .. import __version__
from ..logs import configure_logging
from .common import interrupted
from .dashboard import dashboard
from .demo import demo
from .dlq import dlq
from .events import events
from .send import send
from .status import status
from .worker import worker

#: Wide enough that every command's first docstring line shows whole in ``fairq --help``.
HELP_WIDTH = 120


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH})
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
cli.add_command(events)
cli.add_command(dashboard)


def full_short_help(group: click.Group) -> None:
    """Give every command (and subcommand) its whole first docstring line as its ``--help`` summary.

    Click otherwise cuts the summary to what fits beside the name at 80 columns and ends it with "...".
    """
    for command in group.commands.values():
        if command.short_help is None and command.help:
            command.short_help = command.help.strip().splitlines()[0]
        if isinstance(command, click.Group):
            full_short_help(command)


full_short_help(cli)


def main() -> None:
    """Run the CLI. Click's own handling is kept, except that a Ctrl-C at any moment
    (parsing, a prompt, a command, its tear-down) exits 130 with one line, where
    click would print two and exit 1."""
    try:
        result = cli.main(prog_name="fairq", standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C and end-of-input at a prompt into Abort
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            click.echo(err=True)  # end the prompt's line
            interrupted()
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        interrupted()
    except BrokenPipeError:  # `fairq dlq list Q | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
