"""scripts/ensure-rabbitmq's decisions, run for real with a PATH of our own: no rabbitmq-server on it, fake
`id` and `apt-get` where a case needs them, and a broker URL on a port where nothing listens. Nothing is
installed or started for real, and the shared broker is never addressed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-rabbitmq"
TOOLS = ("bash", "timeout", "seq", "sleep", "mkdir", "env")
INSTALL = "apt-get install -y rabbitmq-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """A PATH directory with only the tools the script needs (no rabbitmq-server, no apt-get), and `id -u` 1000."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real, tool
        (path / tool).symlink_to(real)
    fake(path, "id", 'echo "${FAKE_UID:-1000}"')
    return path


def run(bindir: Path, port: int, purpose: str | None = None, ci: str | None = None,
        uid: str = "1000") -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bindir), "FAIRQ_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}/", "FAKE_UID": uid,
           "HOME": str(bindir.parent)}
    if ci is not None:
        env["CI"] = ci
    args = [str(SCRIPT)] + ([purpose] if purpose else [])
    return subprocess.run(args, env=env, cwd=bindir.parent, capture_output=True, text=True, timeout=60)


def test_no_broker_and_none_can_be_installed_skips_the_rabbitmq_tests_locally(bindir: Path) -> None:
    result = run(bindir, free_port())
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert "RabbitMQ tests will be skipped" in line and INSTALL in line


def test_in_ci_a_missing_broker_fails_with_the_install_command(bindir: Path) -> None:
    result = run(bindir, free_port(), ci="true")
    assert result.returncode == 1, result.stderr
    assert INSTALL in result.stderr and "skipped" not in result.stderr


def test_for_the_demo_it_says_nothing_and_lets_make_fall_back_even_in_ci(bindir: Path) -> None:
    result = run(bindir, free_port(), "demo", ci="true")
    assert (result.returncode, result.stderr) == (3, "")


def test_root_without_apt_get_cannot_install_either(bindir: Path) -> None:
    result = run(bindir, free_port(), uid="0")
    assert result.returncode == 3 and "skipped" in result.stderr


def test_a_broker_that_answers_is_left_alone(bindir: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result = run(bindir, listener.getsockname()[1], ci="true")
    assert (result.returncode, result.stderr) == (0, "")


def test_root_with_apt_get_installs_it_saying_so_then_starts_it(bindir: Path, tmp_path: Path) -> None:
    """The fake apt-get records its arguments and "installs" a fake rabbitmq-server, which opens the port."""
    port = free_port()
    log = tmp_path / "calls"
    pidfile = tmp_path / "listener.pid"
    listener = (f"import os, socket, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(30)")
    server = f'echo "rabbitmq-server $*" >> {log}\n{sys.executable} -c "{listener}" </dev/null >/dev/null 2>&1 &'
    fake(bindir, "apt-get", f'echo "apt-get $*" >> {log}\n'
                            f'if [ "$1" = install ]; then {shutil.which("cat")} > {bindir}/rabbitmq-server <<\'EOS\'\n'
                            f'#!/bin/bash\n{server}\nEOS\n{shutil.which("chmod")} +x {bindir}/rabbitmq-server; fi')
    try:
        result = run(bindir, port, uid="0", ci="true")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), 9)
    assert result.returncode == 0, result.stderr
    assert "installing it: apt-get install -y rabbitmq-server" in result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update -q"
    assert calls[1] == "apt-get install -y -q rabbitmq-server"
    assert calls[2] == "rabbitmq-server -detached"  # a private node: the port is not 5672
    assert "RabbitMQ is up" in result.stderr
