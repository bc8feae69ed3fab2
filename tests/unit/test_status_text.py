"""`fairq status` and `--broker` say what they mean on every backend, not only RabbitMQ."""

from __future__ import annotations

from click.testing import CliRunner

from fairq.cli.main import cli
from fairq.cli.status import render, title, unnamed_hint
from fairq.observe.counts import QueueRow

ROWS = [QueueRow("default", 3, 1, 0)]


def test_sqlite_and_memory_titles_do_not_speak_of_amqp() -> None:
    assert title(ROWS, False, "sqlite:////tmp/x.db") == "fairq queues (no unacked counts from sqlite://)"
    assert title(ROWS, False, "memory://") == "fairq queues (no unacked counts from memory://)"
    assert "AMQP" not in unnamed_hint(ROWS, False, "http://localhost:15672", "sqlite:////tmp/x.db")


def test_amqp_without_the_management_api_says_so() -> None:
    assert "management API did not answer" in title(ROWS, False, "amqps://u:p@host/")


def test_nothing_is_said_when_the_backend_told_everything() -> None:
    rows = [QueueRow("default", 3, 1, 0, unacked=2)]
    assert title(rows, False, "sqlite:////tmp/x.db") == "fairq queues"
    assert [c.header for c in render(rows, False, "sqlite:////tmp/x.db").columns] == [
        "queue", "ready", "unacked", "consumers", "dead-lettered"]


def test_broker_help_names_every_scheme() -> None:
    result = CliRunner().invoke(cli, ["status", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for scheme in ("amqp://", "amqps://", "sqlite:///", "memory://"):
        assert scheme in text
