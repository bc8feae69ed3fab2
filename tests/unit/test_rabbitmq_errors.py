"""How aiormq's errors become fairq's (no broker involved): a refused virtual host, a lost channel."""

from __future__ import annotations

import aiormq.exceptions as amqp_errors
import pytest

from fairq.broker.rabbitmq.errors import lost, translate, vhost_of
from fairq.errors import ChannelClosed, ConnectionFailed, ConsumerTimedOut, LoginRefused, VhostRefused

URL = "amqp://guest:***@127.0.0.1:5672/apps%2Fone"


def test_a_close_in_reply_to_open_is_a_refused_vhost() -> None:
    # What aiormq 7.2 raises when RabbitMQ answers connection.open with connection.close (530).
    exc = amqp_errors.InvalidFrameError("Expected one of ['Connection.OpenOk'], got <Connection.Close object at 0x1>")
    error = translate(exc, "connect", URL)
    assert isinstance(error, VhostRefused) and isinstance(error, LoginRefused)
    assert error.vhost == "apps/one" and "virtual host 'apps/one'" in str(error)


def test_not_allowed_keeps_the_brokers_reason() -> None:
    # What an aiormq that looks for the close first raises.
    error = translate(amqp_errors.ConnectionNotAllowed(530, "NOT_ALLOWED - vhost apps/one not found"), "connect", URL)
    assert isinstance(error, VhostRefused) and "vhost apps/one not found" in str(error)


def test_another_bad_frame_stays_an_outage_worth_retrying() -> None:
    error = translate(amqp_errors.InvalidFrameError("No frame length"), "connect", URL)
    assert type(error) is ConnectionFailed


@pytest.mark.parametrize(("url", "vhost"), [
    ("amqp://h/", "/"), ("amqp://h", "/"), ("amqp://h/%2F", "/"), ("amqp://u:p@h:5672/prod", "prod"),
])
def test_the_vhost_is_read_from_the_url_as_aiormq_reads_it(url: str, vhost: str) -> None:
    assert vhost_of(url) == vhost


def test_a_channel_closed_by_the_consumer_timeout_is_lost_as_consumer_timed_out_with_the_advice() -> None:
    # The close RabbitMQ 3.10 sends when a delivery stays unacked past consumer_timeout (406).
    text = ("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 5000 ms. "
            "This timeout value can be configured, see consumers doc guide to learn more")
    error = lost("consumer channel of 'q'", URL, amqp_errors.ChannelPreconditionFailed(text))
    assert isinstance(error, ConsumerTimedOut) and isinstance(error, ChannelClosed)
    assert error.code == 406 and "timed out" in str(error)
    assert "consumer_timeout closed the channel" in error.advice and "time_limit" in error.advice


@pytest.mark.parametrize("exc", [amqp_errors.ChannelPreconditionFailed("PRECONDITION_FAILED - unknown delivery tag 7"),
                                 amqp_errors.ChannelNotFoundEntity("NOT_FOUND - no queue 'q'"), None])
def test_any_other_close_is_lost_as_a_plain_channel_closed(exc: BaseException | None) -> None:
    error = lost("connection", URL, exc)
    assert type(error) is ChannelClosed and str(error).startswith(f"connection to {URL} lost: ")
