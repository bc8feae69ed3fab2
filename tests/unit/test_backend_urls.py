"""Picking a backend by URL scheme, and the checks config makes on each scheme."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fairq.broker import connect_url
from fairq.broker.memory import MemoryBroker
from fairq.broker.sqlite import SQLiteBroker
from fairq.config import broker_url
from fairq.errors import ConfigurationError


def test_each_scheme_picks_its_backend() -> None:
    assert isinstance(connect_url("memory://"), MemoryBroker)
    assert isinstance(connect_url("memory://named"), MemoryBroker)
    assert isinstance(connect_url("sqlite:///tmp/fairq-url-test.db"), SQLiteBroker)
    assert type(connect_url("amqp://guest:guest@localhost/")).__name__ == "RabbitMQBroker"
    with pytest.raises(ConfigurationError, match="unknown broker URL scheme 'redis'"):
        connect_url("redis://localhost")


def test_config_accepts_the_three_schemes_and_checks_each() -> None:
    for url in ("memory://", "memory://tests", "sqlite:///var/lib/fairq.db", "amqp://u:p@h/"):
        assert broker_url(url) == url
    for bad, why in [("sqlite://", "needs a database path"), ("sqlite:///", "needs a database path"),
                     ("redis://u:secret@h/", "must start with"), ("amqp:///", "no host")]:
        with pytest.raises(ConfigurationError, match=why) as info:
            broker_url(bad)
        assert "secret" not in str(info.value)


def test_memory_and_sqlite_users_never_load_the_amqp_client() -> None:
    code = ("import sys, asyncio\n"
            "from fairq.broker import connect_url\n"
            "async def main():\n"
            "    b = connect_url('memory://'); await b.connect(); await b.close()\n"
            "asyncio.run(main())\n"
            "print('aiormq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
