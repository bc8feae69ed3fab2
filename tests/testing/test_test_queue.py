"""fairq.testing: a user's tasks run in the test on memory://, no broker involved."""

from __future__ import annotations

import pytest

import fairq
from fairq.testing import DeadLettered, NotIdle, TestQueue, run_tasks


app = fairq.App(broker="amqp://guest:guest@127.0.0.1:1/")  # nothing listens there: every send must go to memory
seen: list[str] = []


@app.task(name="tt.add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="tt.flaky", max_retries=3, retry_backoff=10.0)
def flaky(key: str) -> str:
    seen.append(key)
    if seen.count(key) < 3:
        raise ConnectionError(f"try {seen.count(key)}")
    return "done"


@app.task(name="tt.broken", max_retries=2, retry_backoff=1.0)
def broken() -> None:
    raise ValueError("broken for good")


@app.task(name="tt.chain", queue="other")
async def chain(n: int) -> int:
    if n:
        add.send(n, n)
    return n


@pytest.fixture
def fairq_app() -> fairq.App:
    return app


def test_a_task_runs_and_its_result_is_kept(fairq_queue: TestQueue) -> None:
    add.send(2, 3)
    assert fairq_queue.pending("default") == 1 and fairq_queue.runs == []  # nothing runs before asked
    ran = fairq_queue.run_until_idle()
    assert [(r.task, r.args, r.result) for r in ran] == [("tt.add", (2, 3), 5)]
    assert fairq_queue.results(add) == [5]
    assert fairq_queue.pending("default") == 0


def test_an_async_task_sending_another_runs_both(fairq_queue: TestQueue) -> None:
    chain.send(4)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(chain) == [4] and fairq_queue.results(add) == [8]


def test_a_failing_task_raises_its_own_exception_in_the_test(fairq_queue: TestQueue) -> None:
    broken.send()
    with pytest.raises(ValueError, match="broken for good") as info:
        fairq_queue.run_until_idle(include_delayed=True)
    assert any(entry.name == "broken" for entry in info.traceback)  # the task's frame, not a copy
    [dead] = fairq_queue.dead_letters(broken)
    assert (dead.reason, dead.error_type, dead.attempts) == ("task failed", "ValueError", 3)
    assert [r.ok for r in fairq_queue.runs] == [False, False, False]


def test_collect_instead_of_raise() -> None:
    with run_tasks(app, raise_errors=False) as q:
        broken.send()
        q.run_until_idle(include_delayed=True)
        [error] = q.errors
        assert isinstance(error, ValueError)


def test_retry_waits_for_the_clock_then_succeeds() -> None:
    with run_tasks(app) as q:
        flaky.send("a")
        q.run_until_idle()
        assert seen.count("a") == 1 and q.delayed() == 1  # the retry waits 5-10 s on the test's clock
        q.advance(4.9)
        q.run_until_idle()
        assert seen.count("a") == 1
        q.advance(5.1)
        q.run_until_idle()
        assert seen.count("a") == 2  # second retry: 10-20 s
        q.advance(20)
        q.run_until_idle()
        assert q.results(flaky) == ["done"] and q.dead_letters(flaky) == []


def test_retries_then_dead_letter_with_include_delayed(fairq_queue: TestQueue) -> None:
    broken.send()
    with pytest.raises(ValueError):
        fairq_queue.run_until_idle(include_delayed=True)
    assert fairq_queue.clock() >= 1.5  # two backoffs went by on the test's clock, none on the wall's
    assert fairq_queue.delayed() == 0


def test_a_delayed_task_runs_only_after_advance(fairq_queue: TestQueue) -> None:
    add.send_with((1, 1), delay=3600)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(add) == []
    fairq_queue.advance(3599)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(add) == []
    fairq_queue.advance(1)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(add) == [2]


def test_wrong_arguments_are_dead_lettered_as_in_production(fairq_queue: TestQueue) -> None:
    app.send("tt.add", [1])  # by name: send does not check the signature, the worker does
    with pytest.raises(DeadLettered, match="wrong arguments"):
        fairq_queue.run_until_idle()
    app.send("tt.nosuch")
    with pytest.raises(DeadLettered, match="unknown task"):
        fairq_queue.run_until_idle()


def test_a_time_limit_counts_on_the_wall_clock() -> None:
    import asyncio

    limited = fairq.App()

    @limited.task(name="tt.slow", time_limit=0.05, max_retries=0)
    async def slow() -> None:
        await asyncio.sleep(5)

    with run_tasks(limited) as q:
        slow.send()
        with pytest.raises(fairq.TimeLimitExceeded):
            q.run_until_idle()


def test_a_task_that_never_ends_times_out_the_wait() -> None:
    import threading

    gate = threading.Event()
    stuck = fairq.App()

    @stuck.task(name="tt.stuck")
    def wait() -> None:
        gate.wait(10)

    with run_tasks(stuck) as q:
        wait.send()
        try:
            with pytest.raises(NotIdle, match="running 1"):
                q.run_until_idle(timeout=0.2)
        finally:
            gate.set()


def test_the_app_sends_where_it_did_before_afterwards() -> None:
    before = app.explicit_broker_url
    with run_tasks(app) as q:
        assert app.broker_url == q.url and q.url.startswith("memory://")
    assert app.explicit_broker_url == before


def test_a_queue_first_sent_to_by_a_task_is_consumed_too(fairq_queue: TestQueue) -> None:
    @app.task(name="tt.forward")
    def forward(n: int) -> None:
        add.send_with((n, 1), queue="urgent")  # a queue no task of the app names

    forward.send(41)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(add) == [42] and fairq_queue.pending("urgent") == 0
    assert [r.task for r in fairq_queue.runs] == ["tt.forward", "tt.add"]  # forward ran once, not again


def test_a_dead_letter_is_raised_once_not_on_every_later_call(fairq_queue: TestQueue) -> None:
    broken.send()
    with pytest.raises(ValueError):
        fairq_queue.run_until_idle(include_delayed=True)
    add.send(1, 2)
    assert [r.result for r in fairq_queue.run_until_idle()] == [3]
    assert len(fairq_queue.dead_letters(broken)) == 1


def test_a_sync_task_over_its_time_limit_replaces_the_worker_and_the_next_task_runs() -> None:
    import threading

    gate = threading.Event()
    limited = fairq.App()

    @limited.task(name="tt.hangs", time_limit=0.05, max_retries=0)
    def hangs() -> None:
        gate.wait(10)

    @limited.task(name="tt.after")
    def after() -> str:
        return "ran"

    try:
        with run_tasks(limited) as q:
            hangs.send()
            after.send()
            with pytest.raises(fairq.TimeLimitExceeded, match="time limit of 0.05 s"):
                q.run_until_idle()
            assert q.results(after) == ["ran"]  # on the worker that replaced the recycled one
            [dead] = q.dead_letters()
            assert dead.task == "tt.hangs" and dead.error_type == "fairq.errors.TimeLimitExceeded"
    finally:
        gate.set()
