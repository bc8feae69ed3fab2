"""TLS settings: the --tls-* options fold into the amqps:// query aiormq reads; bad ones fail early."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from yarl import URL

from fairq.cli.common import broker_option, one_line_errors, resolve_broker, with_tls_files
from fairq.cli.main import cli
from fairq.config import broker_url, redact
from fairq.errors import ConfigurationError


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A directory with stand-ins for ca.pem, a client certificate and its key (in a name needing escapes)."""
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "my key&1.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    return tmp_path


def test_files_become_the_query_parameters_aiormq_reads_and_keep_the_others(pem: Path) -> None:
    url = with_tls_files("amqps://u:pw@h:5671/v?heartbeat=5&cafile=/old.pem", tls_ca=str(pem / "ca.pem"),
                         tls_cert=str(pem / "client.pem"), tls_key=str(pem / "my key&1.pem"))
    query = URL(url).query  # how aiormq reads them
    assert dict(query) == {"heartbeat": "5", "cafile": str(pem / "ca.pem"), "certfile": str(pem / "client.pem"),
                           "keyfile": str(pem / "my key&1.pem")}
    assert url.startswith("amqps://u:pw@h:5671/v?heartbeat=5&cafile=/")
    assert broker_url(url) == url


def test_no_tls_options_leave_the_url_alone() -> None:
    assert with_tls_files("amqp://u:pw@h/?x=a+b") == "amqp://u:pw@h/?x=a+b"


def test_tls_options_on_a_plain_url_are_refused_rather_than_ignored(pem: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"need an amqps:// broker URL, got 'amqp://u:\*\*\*@h/'"):
        with_tls_files("amqp://u:pw@h/", tls_ca=str(pem / "ca.pem"))
    with pytest.raises(ConfigurationError, match=r"TLS parameters \(cafile\) need an amqps://"):
        broker_url(f"amqp://u:pw@h/?cafile={pem}/ca.pem")


@pytest.mark.parametrize(("query", "error"), [
    ("cafile=/nope/ca.pem", "cafile in the broker URL: no such file: /nope/ca.pem"),
    ("keyfile={pem}/my%20key%261.pem", "keyfile in the broker URL needs certfile"),
    ("certfile={pem}/client.pem", "holds no private key: give keyfile"),
])
def test_tls_files_aiormq_would_fail_on_obscurely_are_named(pem: Path, query: str, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        broker_url("amqps://u:pw@h/?" + query.format(pem=pem))


def test_a_certificate_file_holding_its_key_needs_no_keyfile(pem: Path) -> None:
    (pem / "both.pem").write_text((pem / "client.pem").read_text() + (pem / "my key&1.pem").read_text())
    assert broker_url(f"amqps://u:pw@h/?certfile={pem}/both.pem")


@pytest.mark.parametrize(("text", "shown"), [
    ("amqps://u:pw@h:5671/?cafile=/a/ca.pem&certfile=/a/c.pem",
     "amqps://u:***@h:5671/?cafile=/a/ca.pem&certfile=/a/c.pem"),
    ("at amqps://u:p%40w@h/?name=me@host&x=1 now", "at amqps://u:***@h/?name=me@host&x=1 now"),
    ("amqps://h:5671/?cafile=/a.pem", "amqps://h:5671/?cafile=/a.pem"),
])
def test_urls_with_a_query_string_are_redacted_and_keep_the_query(text: str, shown: str) -> None:
    assert redact(text) == shown


@click.command()
@broker_option
@one_line_errors
def echo_broker(broker: str | None) -> None:
    click.echo(resolve_broker(broker))


def test_the_options_reach_resolve_broker_without_a_parameter_of_the_command(pem: Path) -> None:
    runner = CliRunner()
    args = ["-b", "amqps://u:pw@h/", "--tls-ca", str(pem / "ca.pem"), "--tls-cert", str(pem / "client.pem"),
            "--tls-key", str(pem / "my key&1.pem")]
    result = runner.invoke(echo_broker, args)
    assert result.exit_code == 0, result.output
    assert dict(URL(result.output.strip()).query) == {
        "cafile": str(pem / "ca.pem"), "certfile": str(pem / "client.pem"), "keyfile": str(pem / "my key&1.pem")}
    plain = runner.invoke(echo_broker, ["-b", "amqp://u:pw@h/", "--tls-ca", str(pem / "ca.pem")])
    assert plain.exit_code == 1 and "need an amqps:// broker URL" in plain.output
    missing = runner.invoke(echo_broker, ["-b", "amqps://u:pw@h/", "--tls-ca", str(pem / "nope.pem")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((prefix + name, command))
    return found


def test_every_command_that_takes_a_broker_takes_the_tls_options() -> None:
    with_broker = set()
    for name, command in _commands(cli):
        options = {opt for param in command.params for opt in param.opts}
        if "--broker" in options:
            with_broker.add(name)
            assert {"--tls-ca", "--tls-cert", "--tls-key"} <= options, name
    assert {"worker", "send", "status", "demo", "dlq list"} <= with_broker
