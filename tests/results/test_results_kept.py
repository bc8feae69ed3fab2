"""Where results go when the caller is not there to take them: dropped on RabbitMQ (logged once), kept in
SQLite's file or a result store until their TTL, and never kept past it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fairq
from fairq.broker import QueueKind, QueueSpec, kind_option, open_backend
from tests.support import vhosts
from tests.support.workers import wait_for, worker_process

TASKS = Path(__file__).with_name("result_tasks.py")
#: A caller that sends two tasks asking for their results, prints their ids and exits without waiting.
CALLER = """
import sys, fairq
app = fairq.App()
print(" ".join(app.send("results.add", (i, i), queue=sys.argv[1], result=True) for i in (1, 2)))
app.close()
"""


def call_and_leave(url: str, queue: str, store: str | None = None) -> list[str]:
    env = {**os.environ, "FAIRQ_BROKER_URL": url}
    if store:
        env["FAIRQ_TEST_RESULT_STORE"] = store
        code = CALLER.replace("fairq.App()", f"fairq.App(results={store!r})")
    else:
        code = CALLER
    done = subprocess.run([sys.executable, "-c", code, queue], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture(scope="module")
def vhost(broker_url: str) -> Iterator[str]:
    with vhosts.private_vhost(broker_url) as url:
        yield url


def queue() -> str:
    return f"kept-{uuid.uuid4().hex[:8]}"


def test_on_rabbitmq_a_departed_callers_results_are_dropped_and_the_worker_says_so_once(vhost: str) -> None:
    q = queue()
    ids = call_and_leave(vhost, q)
    assert len(ids) == 2
    app = fairq.App(vhost)
    try:
        with worker_process(str(TASKS), "-Q", q, "-p", "1", "--prefetch", "1", env={"FAIRQ_BROKER_URL": vhost}) as w:
            app.send("results.silent", (), queue=q)  # with prefetch 1 it starts only once both results were sent
            wait_for(lambda: w.count(" start results.silent ") == 1, 30, what="the two tasks settled")
            assert w.count(" end results.add ") == 2
            assert w.count("is gone") == 1, w.output()
            assert ids[0] in w.output() and "dropped" in w.output()
        stats = asyncio.run(_stats(vhost, q))
        assert stats == (0, 0), "both tasks were acked and nothing was dead-lettered"
    finally:
        app.close()


async def _stats(url: str, q: str) -> tuple[int, int]:
    broker = open_backend(url).broker()
    await broker.connect()
    try:
        main, dead = await broker.stats(q), await broker.stats(f"{q}.dlq")
        assert main is not None and dead is not None
        return main.ready, dead.ready
    finally:
        await broker.close()


def test_on_rabbitmq_an_unread_reply_expires_in_its_queue_after_the_ttl(vhost: str) -> None:
    async def scenario() -> None:
        broker = open_backend(vhost).broker()
        await broker.connect()
        try:
            q = queue()
            await broker.declare(QueueSpec(q, options=kind_option(QueueKind.PLAIN)))
            assert await broker.publish_result(q, "m1", b'{"v":1,"ok":true,"value":1}', ttl=1.0)
            stats = await broker.stats(q)
            assert stats is not None and stats.ready == 1
            for _ in range(100):
                stats = await broker.stats(q)
                assert stats is not None
                if stats.ready == 0:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the reply outlived its TTL")
        finally:
            await broker.close()

    asyncio.run(scenario())


def test_on_sqlite_a_caller_that_comes_back_finds_its_results_in_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fairq.db"
    q = queue()
    ids = call_and_leave(url, q)
    app = fairq.App(url)
    try:
        with worker_process(str(TASKS), "-Q", q, "-p", "1", env={"FAIRQ_BROKER_URL": url}):
            assert [app.handle(i).result(timeout=30) for i in ids] == [2, 4]
    finally:
        app.close()


def test_on_rabbitmq_a_result_store_keeps_results_for_a_caller_that_comes_back(vhost: str, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/results.db"
    q = queue()
    ids = call_and_leave(vhost, q, store=store)
    app = fairq.App(vhost, results=store)
    try:
        with worker_process(str(TASKS), "-Q", q, "-p", "1",
                            env={"FAIRQ_BROKER_URL": vhost, "FAIRQ_TEST_RESULT_STORE": store}):
            assert [app.handle(i).result(timeout=30) for i in ids] == [2, 4]
    finally:
        app.close()
    rows = sqlite3.connect(tmp_path / "results.db").execute("SELECT count(*) FROM results").fetchone()[0]
    assert rows >= 2


def test_on_sqlite_results_expire_after_their_ttl_and_leave_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fairq.db"
    q = queue()
    app = fairq.App(url, result_ttl=1.0)
    try:
        with worker_process(str(TASKS), "-Q", q, "-p", "1", env={"FAIRQ_BROKER_URL": url}):
            first = app.send("results.add", (1, 1), queue=q, result=True)
            assert first.result(timeout=30) == 2
            wait_for(lambda: app.handle(first).status() == "pending", 10, what="the result to expire")
            with pytest.raises(fairq.ResultTimeout):
                app.handle(first).result(timeout=0)
            assert app.send("results.add", (2, 2), queue=q, result=True).result(timeout=30) == 4
    finally:
        app.close()
    kept = [r[0] for r in sqlite3.connect(tmp_path / "fairq.db").execute("SELECT message_id FROM results")]
    assert first not in kept and len(kept) == 1, "the next result pruned the expired one"
