"""Fixtures of the dashboard's test modules (tests/dashboard, tests/browser): import them into a module or conftest.

``backend``: one backend per module and parameter (amqp, sqlite, memory; :func:`harness_for`); ``served``:
a dashboard of it served by real uvicorn for the module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fairq.dashboard.server import DashboardServer

from .backends import KINDS, Harness
from .dashboard import dashboard, harness_for


@pytest.fixture(scope="module", params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with harness_for(request.param, lambda: str(request.getfixturevalue("broker_url")),
                     tmp_path_factory.mktemp("sqlite")) as harness:
        yield harness


@pytest.fixture(scope="module")
def served(backend: Harness) -> Iterator[DashboardServer]:
    with dashboard(backend.url) as server:
        yield server
