"""Fixtures for fault tests: private RabbitMQ nodes (see tests/support/rabbit_node.py).

* ``private_rabbit`` -- a started node with default config.  For custom
  config use indirect parametrization::

      @pytest.mark.parametrize("private_rabbit", [{"config": {"consumer_timeout": "2000"}}], indirect=True)

* ``make_private_rabbit(config=None, advanced_config=None, *, start=True, **kw)``
  -- factory for one or more nodes per test (e.g. to set ``node.config`` TLS
  lines before starting: pass ``start=False``).

Every node is stopped and its directory removed at teardown; when the test
failed, the tail of each node's log is printed first (shown under "Captured
stdout teardown").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # plain `pytest` does not put the repo root on sys.path
    sys.path.insert(0, str(_REPO_ROOT))

from tests.support.rabbit_node import PrivateRabbitNode, rabbitmq_available  # noqa: E402

_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def make_private_rabbit(request: pytest.FixtureRequest) -> Iterator[Callable[..., PrivateRabbitNode]]:
    if not rabbitmq_available():
        message = "RabbitMQ server scripts not installed (/usr/lib/rabbitmq/bin): sudo apt-get install -y rabbitmq-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    nodes: list[PrivateRabbitNode] = []

    def factory(
        config: dict[str, str] | None = None,
        advanced_config: str | None = None,
        *,
        start: bool = True,
        **kwargs: Any,
    ) -> PrivateRabbitNode:
        node = PrivateRabbitNode(config, advanced_config, **kwargs)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield factory

    failed = request.node.stash.get(_CALL_FAILED, False)
    errors: list[BaseException] = []
    for node in reversed(nodes):
        if failed:
            print(f"\n=== {node!r}\n{node.log_tail(40)}")
        try:
            node.cleanup()
        except Exception as exc:  # keep cleaning the other nodes
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def private_rabbit(
    request: pytest.FixtureRequest, make_private_rabbit: Callable[..., PrivateRabbitNode]
) -> PrivateRabbitNode:
    """A started private node; ``request.param`` (indirect) = factory kwargs."""
    params: dict[str, Any] = dict(getattr(request, "param", None) or {})
    return make_private_rabbit(**params)
