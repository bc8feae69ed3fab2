"""A private RabbitMQ cluster for fault tests: three (or more) private nodes joined into one.

Each node is a :class:`~tests.support.rabbit_node.PrivateRabbitNode` (its own node name, AMQP
and distribution ports on 127.0.0.1, data dir), all with one Erlang cookie of their own so
they can talk to each other and to nothing else; the shared node ``rabbit@localhost`` is never
addressed. The nodes boot at once, then each after the first is joined to it the classic
way: ``stop_app``, ``reset``, ``join_cluster FIRST``, ``start_app``. A node killed or stopped
later rejoins by itself when started again (its data dir remembers the cluster).

Measured on this machine (2 vCPUs shared with other work, RabbitMQ 3.10.8): :meth:`start`
of three nodes takes ~15-30 s, each later ``node.start()`` of a member ~4-8 s.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .rabbit_node import PrivateRabbitNode, RabbitNodeError, wait_until

__all__ = ["RabbitCluster"]


class RabbitCluster:
    """``size`` private nodes joined into one cluster; :attr:`url` names them all (fairq's multi-host form).

    ``query`` is appended to every URL (short heartbeats and connect timeouts for fault tests).
    """

    def __init__(self, size: int = 3, config: Mapping[str, str] | None = None, query: str = "") -> None:
        cookie = secrets.token_hex(20).upper()
        tag = secrets.token_hex(3)
        self.query = query
        self.nodes = [PrivateRabbitNode(config, name=f"fairq-cluster-{tag}-{i + 1}", cookie=cookie)
                      for i in range(size)]
        #: Wall-clock seconds start() took.
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(self.address(node) for node in self.nodes)
        return f"amqp://guest:guest@{hosts}/" + (f"?{self.query}" if self.query else "")

    def node_url(self, node: PrivateRabbitNode) -> str:
        return f"amqp://guest:guest@{self.address(node)}/" + (f"?{self.query}" if self.query else "")

    @staticmethod
    def address(node: PrivateRabbitNode) -> str:
        return f"{node.host}:{node.port}"

    def by_address(self, address: str) -> PrivateRabbitNode:
        for node in self.nodes:
            if self.address(node) == address:
                return node
        raise KeyError(address)

    def by_name(self, nodename: str) -> PrivateRabbitNode:
        for node in self.nodes:
            if node.nodename == nodename:
                return node
        raise KeyError(nodename)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.rabbitmqctl("stop_app")
            node.rabbitmqctl("reset")
            node.rabbitmqctl("join_cluster", first.nodename)
            node.rabbitmqctl("start_app")
        wait_until(lambda: len(self.running_nodes()) == len(self.nodes), 60, interval=0.5,
                   message="every node running in the cluster")
        self.start_seconds = time.monotonic() - t0

    def running_nodes(self, via: PrivateRabbitNode | None = None) -> list[str]:
        """The cluster's running members, as a running node (``via``, else any) sees them."""
        status = self._ctl_json(via, "cluster_status")
        return list(status.get("running_nodes", []))

    def _ctl_json(self, via: PrivateRabbitNode | None, *args: str) -> Any:
        node = via or self.a_running_node()
        out = node.rabbitmqctl("-q", *args, "--formatter", "json").strip()
        return json.loads(out) if out else {}

    def a_running_node(self) -> PrivateRabbitNode:
        for node in self.nodes:
            if node.running and node._frozen is None:
                return node
        raise RabbitNodeError("no node of the cluster is running")

    def leader(self, queue: str) -> PrivateRabbitNode:
        """The node that leads ``queue``'s quorum now."""
        rows = self._ctl_json(None, "list_queues", "name", "leader")
        for row in rows:
            if row.get("name") == queue and row.get("leader"):
                return self.by_name(str(row["leader"]))
        raise RabbitNodeError(f"no leader known for {queue!r}: {rows}")

    def members(self, queue: str) -> list[str]:
        rows = self._ctl_json(None, "list_queues", "name", "members")
        for row in rows:
            if row.get("name") == queue:
                return list(row.get("members") or [])
        return []

    def sync_quorum_metadata(self) -> None:
        """On every running node: see PrivateRabbitNode.kill() for why a crash test wants it."""
        for node in self.nodes:
            if node.running and node._frozen is None:
                node.sync_quorum_metadata()

    def cleanup(self) -> None:
        errors: list[BaseException] = []
        for node in reversed(self.nodes):
            try:
                node.cleanup()
            except Exception as exc:  # every node goes, whatever one of them did
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> RabbitCluster:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cleanup()
