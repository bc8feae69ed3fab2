"""A broker URL naming several nodes, against the real broker: dead ones are passed over, and errors name
each node without the password. Failover between live nodes of a cluster: tests/cluster/."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from helpers import TASKS, Amqp, Journal, run_cli, wait_for, worker_process

SECRET = "s3cret-Pa55"


def dead_address() -> str:
    """A loopback address nothing listens on (a node that is down refuses the connection)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def live_address(broker_url: str) -> str:
    parts = urlsplit(broker_url)
    return f"{parts.hostname}:{parts.port or 5672}"


def test_send_and_a_worker_pass_over_nodes_that_are_down(broker_url: str, amqp: Amqp, queue: str,
                                                         journal: Journal, worker_env: dict[str, str]) -> None:
    # Every order of the three: the shuffle puts the live node anywhere, and dead ones are skipped.
    cluster = f"amqp://guest:guest@{dead_address()},{live_address(broker_url)},{dead_address()}/?connect_timeout=2"
    env = {**worker_env, "FAIRQ_BROKER_URL": cluster}
    for n in range(3):
        sent = run_cli("send", "record", f"n{n}", "-Q", queue, env=env)
        assert sent.returncode == 0, sent.stderr
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=env) as worker:
        wait_for(lambda: sorted(journal.tags("done")) == ["n0", "n1", "n2"], what="the three tasks run")
        assert f"from amqp://guest:***@{live_address(broker_url)}/" in worker.output()
    assert not amqp.ready(queue)


def test_a_repeated_b_is_one_cluster_and_when_no_node_answers_the_error_names_each(broker_url: str) -> None:
    first, second = dead_address(), dead_address()
    result = run_cli("send", "record", "x", "-Q", "q", "--timeout", "5",
                     "-b", f"amqp://guest:{SECRET}@{first}/", "-b", second)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("fairq: error: ") and len(line.splitlines()) == 1, result.stderr
    assert "no node of the cluster answered" in line and first in line and second in line
    assert SECRET not in result.stderr + result.stdout


def test_the_heartbeat_names_the_node_the_worker_is_on(broker_url: str, queue: str,
                                                       worker_env: dict[str, str]) -> None:
    cluster = f"amqp://guest:guest@{dead_address()},{live_address(broker_url)}/?connect_timeout=2"
    env = {**worker_env, "FAIRQ_BROKER_URL": cluster}
    name = f"cluster-{queue}"
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", "--heartbeat", "0.2", "--name", name, env=env):
        # Other tests' workers beat on the shared broker too: 30 heartbeats hold a few of ours.
        listened = run_cli("events", "--json", "-n", "30", "-k", "worker.heartbeat", env=env, timeout=60)
    assert listened.returncode == 0, listened.stderr
    ours = [e for e in map(json.loads, listened.stdout.splitlines()) if e["node"] == name]
    assert ours and all(e["broker_node"] == live_address(broker_url) for e in ours), listened.stdout
