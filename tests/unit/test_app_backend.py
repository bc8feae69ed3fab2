"""App and Producer on backend objects: a send reaches an in-process store that a broker of the same backend reads."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import fairq
from fairq.broker import Backend, MemoryBackend, open_backend
from fairq.config import BROKER_ENV
from fairq.errors import ConfigurationError

SRC = Path(fairq.__file__).parent


async def take_one(backend: Backend, queue: str) -> tuple[str | None, str | None]:
    broker = backend.broker()
    await broker.connect()
    try:
        got = await broker.get(queue)
        assert got is not None
        await got.ack()
        return got.envelope.message_id, got.envelope.headers.get("fairq-task")
    finally:
        await broker.close()


def test_an_app_handed_a_backend_sends_into_it() -> None:
    backend = MemoryBackend(f"memory://app-{uuid.uuid4().hex[:8]}")
    app = fairq.App(backend=backend)

    @app.task(name="t.add", queue="sums")
    def add(a: int, b: int) -> int:
        return a + b

    try:
        message_id = add.send(1, 2)
        assert app.backend is backend and app.broker_url == backend.url
        assert asyncio.run(take_one(backend, "sums")) == (message_id, "t.add")
    finally:
        app.close()


def test_an_app_builds_its_backend_once_at_first_use_from_the_url_resolved_then(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BROKER_ENV, raising=False)
    app = fairq.App()
    url = f"memory://late-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(BROKER_ENV, url)  # set after the App was made: still the one used
    try:
        message_id = app.send("t.late", queue="late")
        assert app.backend is app.backend and app.backend.url == url
        # memory://NAME is one store per process: a backend opened elsewhere from the URL sees the message.
        assert asyncio.run(take_one(open_backend(url), "late"))[0] == message_id
    finally:
        app.close()


def test_an_app_takes_a_url_or_a_backend_not_both() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        fairq.App(broker="memory://x", backend=MemoryBackend("memory://x"))


def test_task_and_app_do_not_import_each_other() -> None:
    tree = ast.parse((SRC / "task.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in imported if m and (m == "app" or m.endswith(".app"))}, imported


def test_only_the_rabbitmq_package_imports_the_amqp_client() -> None:
    outside = []
    for path in SRC.rglob("*.py"):
        if (SRC / "broker" / "rabbitmq") in path.parents:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            outside += [f"{path.relative_to(SRC)}: {n}" for n in names if n.split(".")[0] in ("aiormq", "pamqp")]
    assert not outside


def test_no_module_outside_the_broker_package_names_the_amqp_client_or_rabbitmq_headers() -> None:
    words = ("aiormq", "pamqp", "x-delivery-count", "x-death")
    outside = [f"{path.relative_to(SRC)}: {word}" for path in sorted(SRC.rglob("*.py"))
               if (SRC / "broker") not in path.parents
               for word in words if word in path.read_text().lower()]
    assert not outside


def test_importing_fairq_and_naming_a_queue_kind_loads_no_amqp_client() -> None:
    # App names RabbitMQ's queue option before any connection; memory and sqlite users need no AMQP client.
    code = ("import sys, fairq; app = fairq.App(broker='memory://k', queue_kind='classic'); app.queue('q', kind='plain'); "
            "import fairq.logs; fairq.logs.configure_logging(); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('aiormq', 'pamqp')], sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
