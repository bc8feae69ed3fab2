"""Retries, explicit Retry/Reject, time limits, delays and delivery limits, in real worker processes."""

from __future__ import annotations

import time

import pytest
from helpers import TASKS, Amqp, Journal, unique, wait_for, worker_process

from fairq import App
from fairq.broker.topology import dead_letter_queue

#: How late a broker-side delay may end: quorum TTL expiry plus a redelivery, measured up to
#: 1.04 s late on the 2-core test machine under load (fresh-clone test run, 2026-11-27).
LATE = 1.5


def send(broker_url: str, queue: str, task: str, *args: object, delay: float = 0.0) -> float:
    """Send one task; returns the time just before sending."""
    app = App(broker=broker_url)
    try:
        sent = time.time()
        app.send(task, list(args), queue=queue, delay=delay)
        return sent
    finally:
        app.close()


def test_five_failures_then_success_runs_six_times_with_growing_backoff(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        send(broker_url, queue, "flaky", "f", 5)
        wait_for(lambda: journal.tags("done") == ["f"], timeout=30, what="the sixth run to succeed")
    starts = journal.times("start", "f")
    assert len(starts) == 6
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    for retry, gap in enumerate(gaps, start=1):
        ceiling = 0.2 * 2 ** (retry - 1)  # retry_backoff=0.2: waits in [ceiling/2, ceiling], plus dispatch
        assert ceiling / 2 <= gap <= ceiling + LATE, (retry, gaps)
    assert amqp.ready(queue) == 0 and amqp.ready(dead_letter_queue(queue)) == 0


def test_retries_exhausted_dead_letters_with_attempts(broker_url: str, amqp: Amqp, queue: str, journal: Journal,
                                                      worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        send(broker_url, queue, "always_fails", "a")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the dead letter")
    assert journal.tags("start") == ["a", "a", "a"]  # max_retries=2: three runs
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-attempts"] == 3
    assert props.headers["fairq-error-type"] == "KeyError"
    assert props.headers["fairq-dead-reason"] == "task failed"
    assert not any(k.startswith("x-death") for k in props.headers)  # retries carry no stale x-death


def test_retry_asks_for_its_delay_and_reject_dead_letters_at_once(broker_url: str, amqp: Amqp, queue: str,
                                                                   journal: Journal, worker_env: dict[str, str]) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        send(broker_url, queue, "ask_retry", "r", 1.0)
        send(broker_url, queue, "refuse", "x")
        wait_for(lambda: "r" in journal.tags("done") and amqp.ready(dead_letter_queue(queue)) == 1,
                 what="the retried task and the rejected one")
    first, second = journal.times("start", "r")
    assert 1.0 <= second - first <= 2.0
    assert journal.tags("start").count("x") == 1
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-dead-reason"] == "rejected by task"
    assert props.headers["fairq-error-message"] == "bad input, retrying will not help"


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_a_delayed_task_starts_after_its_delay_and_within_a_second(broker_url: str, queue: str, journal: Journal,
                                                                   worker_env: dict[str, str], delay: float) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        sent = send(broker_url, queue, "record", "later", delay=delay)
        wait_for(lambda: journal.tags("done") == ["later"], what="the delayed task")
    started = journal.times("start", "later")[0]
    assert delay <= started - sent <= delay + 1.0


def test_a_short_delay_is_not_stuck_behind_a_long_one(private_vhost: str, journal: Journal) -> None:
    # On a virtual host of its own: the hour-long delay outlives the test, and on the shared one it would end in
    # fairq.delay.unroutable an hour later, its queue gone.
    queue, env = unique(), {"FAIRQ_TEST_JOURNAL": str(journal.path), "FAIRQ_BROKER_URL": private_vhost}
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=env):
        send(private_vhost, queue, "record", "long", delay=3600)
        sent = send(private_vhost, queue, "record", "short", delay=0.5)
        wait_for(lambda: journal.tags("done") == ["short"], what="the short delay")
    assert journal.times("start", "short")[0] - sent <= 1.5


@pytest.mark.parametrize("task", ["slow_async", "slow_sync"])
def test_a_task_over_its_time_limit_fails_and_the_worker_goes_on(broker_url: str, amqp: Amqp, queue: str,
                                                                 journal: Journal, worker_env: dict[str, str],
                                                                 task: str) -> None:
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        send(broker_url, queue, task, "slow", 30)
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the overrun task dead-lettered")
        send(broker_url, queue, "record", "next")
        wait_for(lambda: "next" in journal.tags("done"), what="the next task")
        if task == "slow_sync":  # its thread cannot be stopped: the process was replaced
            assert worker.count("overran its time limit") >= 1
            wait_for(lambda: worker.count("replacing process 1") == 1, what="the supervisor's replacement")
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-error-type"] == "fairq.errors.TimeLimitExceeded"
    assert "slow" not in journal.tags("done")


@pytest.mark.parametrize("kind", ["quorum", "classic"])
def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_the_delivery_limit(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str], kind: str) -> None:
    if kind == "classic":
        amqp.channel.queue_declare(queue, durable=True)  # an existing classic queue: fairq counts itself
    env = {**worker_env, "FAIRQ_TEST_DELIVERY_LIMIT": "3"}
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=env) as worker:
        send(broker_url, queue, "crash", "c")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, timeout=60, what="the crash loop to end")
        assert worker.count("died with exit code 9") == 3
    assert journal.tags("start") == ["c", "c", "c"]
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-dead-reason"] == "delivery limit"
    assert amqp.ready(queue) == 0


@pytest.mark.parametrize(("task", "error"), [("buggy", "TypeError"), ("no_value_retry", "ValueError")])
def test_a_type_that_is_not_retried_runs_once_and_is_dead_lettered_with_its_traceback(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str], task: str,
        error: str) -> None:
    # buggy: a TypeError (not retried by default); no_value_retry: ValueError in its dont_retry. Both allow 3 retries.
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env) as worker:
        send(broker_url, queue, task, "once")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the dead letter")
        wait_for(lambda: worker.count("attempt 1/4 failed") == 1, what="the failure's log line")
    assert journal.tags("start") == ["once"]
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-dead-reason"] == "task failed"
    assert props.headers["fairq-attempts"] == 1
    assert props.headers["fairq-error-type"] == error
    assert f"{error}:" in props.headers["fairq-traceback"]
    line, = [line for line in worker.lines if "attempt 1/4 failed" in line]
    assert " WARNING " in line and f"{task} " in line and f"{error}: " in line and "dead-lettered" in line
    assert "not retried (dont_retry)" in line
