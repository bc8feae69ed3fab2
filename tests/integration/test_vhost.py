"""A virtual host the broker refuses is final, like a refused login: one line at once, exit 1, no retries."""

from __future__ import annotations

import subprocess
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers import TASKS, run_cli, unique

from fairq import App, LoginRefused, VhostRefused


@pytest.fixture
def missing_vhost_url(broker_url: str) -> tuple[str, str]:
    vhost = f"nosuch-{uuid.uuid4().hex[:10]}"
    return urlunsplit(urlsplit(broker_url)._replace(path="/" + vhost)), vhost


@pytest.mark.parametrize("command", [
    ["send", "--queue", "Q", "record", "x"],
    ["status", "-Q", "Q"],
    ["dlq", "list", "Q"],
    ["worker", str(TASKS), "-Q", "Q"],
])
def test_every_command_refuses_a_missing_vhost_at_once_in_one_line(command: list[str],
                                                                   missing_vhost_url: tuple[str, str]) -> None:
    url, vhost = missing_vhost_url
    queue = unique()
    started = time.monotonic()
    try:
        done = run_cli(*[queue if a == "Q" else a for a in command], env={"FAIRQ_BROKER_URL": url}, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fairq {command[0]} still running 20 s after a refused vhost (it retries it)")
    elapsed = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("fairq: error: "), done.stderr
    assert f"virtual host {vhost!r}" in lines[0] and "guest:guest" not in lines[0]
    assert elapsed < 5, f"took {elapsed:.1f} s"


def test_send_raises_vhost_refused_a_login_refused_without_waiting(missing_vhost_url: tuple[str, str]) -> None:
    url, vhost = missing_vhost_url
    app = App(broker=url, send_timeout=20)
    started = time.monotonic()
    try:
        with pytest.raises(VhostRefused) as info:
            app.send("m.f", [1], queue=unique())
    finally:
        app.close()
    assert isinstance(info.value, LoginRefused) and info.value.vhost == vhost
    assert time.monotonic() - started < 5
