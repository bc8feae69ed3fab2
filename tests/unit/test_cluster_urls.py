"""A cluster's nodes in one broker URL, a repeated -b or $FAIRQ_BROKER_URL, and the order connections try them."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fairq.broker import open_backend
from fairq.broker.rabbitmq.hosts import DEFAULT_CONNECT_TIMEOUT, Node, Nodes, connect_timeout, join, split
from fairq.cli.common import broker_option, resolve_broker
from fairq.config import BROKER_ENV, broker_url, redact
from fairq.errors import ConfigurationError


def test_each_host_gets_its_own_url_with_the_credentials_vhost_and_query_of_all() -> None:
    nodes = split("amqp://u:p%40w@rabbit1:5672,rabbit2,rabbit3:5673/prod?heartbeat=5&cafile=/ca.pem")
    assert [n.address for n in nodes] == ["rabbit1:5672", "rabbit2:5672", "rabbit3:5673"]
    assert nodes[1].url == "amqp://u:p%40w@rabbit2:5672/prod?heartbeat=5&cafile=/ca.pem"
    assert nodes[2].display_url == "amqp://u:***@rabbit3:5673/prod?heartbeat=5&cafile=/ca.pem"
    assert [n.address for n in split("amqps://h1,[::1]:5999")] == ["h1:5671", "[::1]:5999"]
    assert split("amqp://guest:guest@localhost/") == [Node("amqp://guest:guest@localhost:5672/", "localhost:5672")]


@pytest.mark.parametrize("bad", ["amqp://u:secret@h1,,h2/", "amqp://u:secret@h1:99999/", "amqp://u:secret@h1:x,h2/",
                                 "amqp://u:secret@h1,/"])
def test_an_empty_host_or_a_bad_port_is_refused_without_the_password(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="host|port") as info:
        broker_url(bad)
    assert "secret" not in str(info.value)


def test_several_urls_join_into_one_that_shares_their_user_vhost_and_query() -> None:
    assert join(["amqp://u:p@h1/v?heartbeat=2", "h2:5673", "amqp://h3", "amqp://u:p@h4/v?heartbeat=2"]) == \
        "amqp://u:p@h1,h2:5673,h3,h4/v?heartbeat=2"
    assert join(["amqp://u:p@h1/"]) == "amqp://u:p@h1/"
    with pytest.raises(ConfigurationError, match="differ in the rest") as info:
        join(["amqp://u:secret@h1/a", "amqp://u:secret@h2/b"])
    assert "secret" not in str(info.value)
    with pytest.raises(ConfigurationError, match="differ in the scheme"):
        join(["amqp://h1/", "amqps://h2/"])


def test_the_environment_may_hold_several_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BROKER_ENV, "amqp://u:p@h1:5672/v amqp://u:p@h2:5672/v")
    assert broker_url() == "amqp://u:p@h1:5672,h2:5672/v"
    monkeypatch.setenv(BROKER_ENV, "amqp://u:p@h1,h2,h3/v")
    assert broker_url() == "amqp://u:p@h1,h2,h3/v"


def test_a_repeated_b_reaches_the_command_as_one_url() -> None:
    @click.command()
    @broker_option
    def show(broker: str | None) -> None:
        click.echo(resolve_broker(broker))

    result = CliRunner().invoke(show, ["-b", "amqp://u:p@h1/v", "-b", "h2:5673", "-b", "amqp://u:p@h3/v"])
    assert result.output.strip() == "amqp://u:p@h1,h2:5673,h3/v", result.output
    refused = CliRunner().invoke(show, ["-b", "amqp://u:secret@h1/a", "-b", "amqp://u:secret@h2/b"])
    assert refused.exit_code == 2 and "secret" not in refused.output


def test_redaction_covers_every_host() -> None:
    assert redact("amqp://u:secret@h1:5672,h2,h3/v") == "amqp://u:***@h1:5672,h2,h3/v"


def test_connect_timeout_is_read_from_the_query() -> None:
    assert connect_timeout("amqp://h1,h2/?connect_timeout=1.5") == 1.5
    assert connect_timeout("amqp://h1/") == DEFAULT_CONNECT_TIMEOUT
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        broker_url("amqp://h1/?connect_timeout=soon")


def _in_order(nodes: list[Node]) -> None:
    """A shuffle that keeps the URL's order, so a test can name which node comes first."""


def test_connections_start_where_the_last_succeeded_and_skip_past_a_lost_node() -> None:
    nodes = Nodes("amqp://a,b,c/", shuffle=_in_order)
    a, b, c = nodes.nodes
    assert nodes.order() == [a, b, c]
    nodes.connected(b)
    assert nodes.order() == [b, c, a]  # a new session (a producer's, say) goes where the last one went
    nodes.lost(b)
    assert nodes.order() == [c, a, b]  # after a loss: the next node first, the lost one last
    nodes.lost(a)  # an old connection's loss does not move the start off the node that works now
    assert nodes.order() == [c, a, b]
    nodes.lost(c)
    assert nodes.order() == [a, b, c]


def test_a_fleet_spreads_over_the_nodes() -> None:
    firsts = {Nodes("amqp://a,b,c/").order()[0].address for _ in range(200)}
    assert firsts == {"a:5672", "b:5672", "c:5672"}


def test_brokers_of_one_backend_share_the_order() -> None:
    backend = open_backend("amqp://guest:guest@a,b,c/")
    first, second = backend.broker(), backend.broker()
    assert first.nodes is second.nodes  # type: ignore[attr-defined]
    assert first.node == "" and first.display_url == "amqp://guest:***@a,b,c/"
