"""What RabbitMQ does its own way: time limits, x-death from the delay chain, classic queues' delivery limit.

Retries, Retry/Reject, delays and the delivery limit are checked on every backend in tests/delivery.
"""

from __future__ import annotations

import pytest
from helpers import TASKS, Amqp, Journal, wait_for, worker_process

from fairq import App
from fairq.broker.topology import dead_letter_queue

def send(broker_url: str, queue: str, task: str, *args: object) -> None:
    app = App(broker=broker_url)
    try:
        app.send(task, list(args), queue=queue)
    finally:
        app.close()


def test_a_dead_letter_after_retries_through_the_delay_chain_carries_no_stale_x_death(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    # RabbitMQ's own: each retry passed through the delay queues, which stamp x-death on the copy.
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=worker_env):
        send(broker_url, queue, "always_fails", "a")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, what="the dead letter")
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-attempts"] == 3
    assert not any(k.startswith("x-death") for k in props.headers)


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


def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_the_limit_on_a_classic_queue(
        broker_url: str, amqp: Amqp, queue: str, journal: Journal, worker_env: dict[str, str]) -> None:
    # A classic queue keeps no delivery count: fairq counts the returns itself (worker/redeliveries.py).
    # Quorum queues, SQLite and memory count them themselves: tests/delivery/test_lifecycle.py.
    amqp.channel.queue_declare(queue, durable=True)  # an existing classic queue
    env = {**worker_env, "FAIRQ_TEST_DELIVERY_LIMIT": "3"}
    with worker_process(str(TASKS), "-Q", queue, "-p", "1", env=env) as worker:
        send(broker_url, queue, "crash", "c")
        wait_for(lambda: amqp.ready(dead_letter_queue(queue)) == 1, timeout=60, what="the crash loop to end")
        assert worker.count("died with exit code 9") == 3
    assert journal.tags("start") == ["c", "c", "c"]
    (props, _), = amqp.drain(dead_letter_queue(queue))
    assert props.headers["fairq-dead-reason"] == "delivery limit"
    assert amqp.ready(queue) == 0
