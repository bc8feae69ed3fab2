"""Task results on every backend, with real `fairq worker` processes on amqp and sqlite (in-process
workers on memory): values, remote failures with their traceback, time-outs, retries, groups, async."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import fairq
from fairq.broker import open_backend
from tests.support import vhosts
from tests.support.inprocess import InProcessWorkers
from tests.support.workers import worker_process

TASKS = Path(__file__).with_name("result_tasks.py")


@dataclass
class Setup:
    url: str
    queue: str  #: consumed by one worker
    app: fairq.App  #: the caller

    def send(self, task: str, *args: object, result: bool = True) -> fairq.Handle:
        return self.app.send(f"results.{task}", args, queue=self.queue, result=result)

    def task(self, name: str) -> fairq.Task[..., object]:
        """A task of the caller's app by that name, on the worker's queue (the caller has no code of its own)."""
        if name not in self.app.tasks:
            self.app.task(name=name, queue=self.queue, result=True)(lambda *args: None)
        return self.app.tasks[name]


@pytest.fixture(scope="module", params=["amqp", "sqlite", "memory"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    queue = f"results-{uuid.uuid4().hex[:8]}"
    if request.param == "amqp":
        broker_url = request.getfixturevalue("broker_url")
        with vhosts.private_vhost(broker_url) as url:
            yield from _with_process(url, queue)
    elif request.param == "sqlite":
        yield from _with_process(f"sqlite:///{tmp_path_factory.mktemp('results')}/fairq.db", queue)
    else:
        url = f"memory://results-{uuid.uuid4().hex[:8]}"
        workers = InProcessWorkers(open_backend(url), [queue], module=str(TASKS))
        app = fairq.App(url)
        try:
            workers.wait_consuming()
            yield Setup(url, queue, app)
        finally:
            app.close()
            workers.close()


def _with_process(url: str, queue: str) -> Iterator[Setup]:
    app = fairq.App(url)
    try:
        with worker_process(str(TASKS), "-Q", queue, "-p", "1", env={"FAIRQ_BROKER_URL": url}):
            yield Setup(url, queue, app)
    finally:
        app.close()


def test_a_result_is_the_value_the_task_returned_and_the_handle_is_the_message_id(setup: Setup) -> None:
    handle = setup.send("add", 2, 3)
    assert isinstance(handle, str) and handle == handle.message_id and len(handle) == 32
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert handle.result(timeout=30) == 5
    assert handle.status() == "succeeded"
    assert setup.send("add", 40, 2).result(timeout=30) == 42


def test_a_failed_task_raises_task_failed_with_the_remote_error_and_traceback(setup: Setup) -> None:
    handle = setup.send("fail", "no such image")
    with pytest.raises(fairq.TaskFailed) as failed:
        handle.result(timeout=30)
    error = failed.value
    assert (error.message_id, error.reason, error.error_type, error.error_message) == (
        handle, "task failed", "ValueError", "no such image")
    assert "raise ValueError(message)" in error.traceback and "result_tasks.py" in error.traceback
    assert handle.status() == "failed"


def test_a_retried_task_sends_one_result_its_last_run(setup: Setup, tmp_path: Path) -> None:
    handle = setup.send("flaky", str(tmp_path / "ran-once"))
    assert handle.result(timeout=30) == "second run"


def test_a_result_that_is_not_json_fails_the_call_and_says_why(setup: Setup) -> None:
    with pytest.raises(fairq.TaskFailed) as failed:
        setup.send("opaque").result(timeout=30)
    assert failed.value.reason == "result not JSON" and "set" in failed.value.error_message


def test_waiting_longer_than_the_timeout_raises_result_timeout_and_the_task_stays_pending(setup: Setup) -> None:
    nobody = f"{setup.queue}-unconsumed"
    handle = setup.app.send("results.add", (1, 1), queue=nobody, result=True)
    with pytest.raises(fairq.ResultTimeout):
        handle.result(timeout=0.3)
    assert handle.status() == "pending"


def test_a_send_that_did_not_ask_has_no_result_to_wait_for(setup: Setup) -> None:
    handle = setup.send("silent", result=False)
    with pytest.raises(fairq.NoResult):
        handle.result(timeout=1)
    assert not handle.wants_result


def test_async_callers_await_the_handle_or_result_async(setup: Setup) -> None:
    async def main() -> list[int]:
        first = setup.send("add", 1, 2)
        second = setup.send("add", 3, 4)
        return [await first, await second.result_async(timeout=30)]

    assert asyncio.run(main()) == [3, 7]


def test_a_group_gathers_every_result_in_order_and_as_completed(setup: Setup) -> None:
    add = setup.task("results.add")
    sent = fairq.group([add.call(i, 1000) for i in range(300)]).send()
    assert len(sent) == 300 and sent.results(timeout=60) == [i + 1000 for i in range(300)]
    again = fairq.group([add.call(i, 0) for i in range(50)]).send()
    assert sorted(h.result() for h in again.as_completed(timeout=60)) == list(range(50))


def test_a_group_with_a_failed_task_raises_its_failure(setup: Setup) -> None:
    fail, add = setup.task("results.fail"), setup.task("results.add")
    sent = fairq.group([add.call(1, 1), fail.call("third of three"), add.call(2, 2)]).send()
    with pytest.raises(fairq.TaskFailed, match="third of three"):
        sent.results(timeout=30)
    assert [h.status() for h in sent.handles] == ["succeeded", "failed", "succeeded"]


def test_results_of_an_unasked_send_cost_the_message_nothing(setup: Setup) -> None:
    nobody = f"{setup.queue}-plain"
    setup.app.send("results.silent", (), queue=nobody)

    async def peek() -> dict[str, object]:
        broker = setup.app.backend.broker()
        await broker.connect()
        try:
            delivery = await broker.get(nobody)
            assert delivery is not None
            await delivery.requeue()
            return delivery.envelope.headers
        finally:
            await broker.close()

    headers = asyncio.run(peek())
    assert "fairq-reply-to" not in headers and "fairq-result-ttl" not in headers


